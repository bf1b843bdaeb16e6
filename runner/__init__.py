"""flashrunner: flash STM32 microcontrollers from a declarative manifest."""

__version__ = "0.1.0"
