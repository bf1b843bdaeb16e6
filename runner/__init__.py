"""flashrunner: flash STM32 microcontrollers from a declarative, validated manifest."""

from runner.manifest import load_manifest as load_manifest
