"""How long compile_plan takes on a large production manifest.

Builds, in memory, a 2 000-device manifest (kind sim, four chip families, a
handful of shared buses and probes, three shared images, chained `after`
groups) and times :func:`runner.compiler.compile_plan` on it. Target: under
one second, so that `flashrunner plan` stays interactive for a whole line.

Run: python tests/bench/bench_compile.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from runner.compiler import compile_plan  # noqa: E402
from runner.model import (  # noqa: E402
    Device,
    DeviceLink,
    EraseStep,
    Execution,
    ImageSpec,
    LinkSpec,
    Manifest,
    Recipe,
    RecoveryPolicy,
    ResetStep,
    VerifyStep,
    WriteStep,
    frozen_map,
)

DEVICES = 2000
CHIPS = ("stm32g071rb", "stm32f103cb", "stm32f411re", "stm32l476rg")


def build(folder: Path) -> Manifest:
    images = {}
    for name, size, address in (("boot", 16 * 1024, 0x0800_0000),
                                ("app", 40_000, 0x0800_4000),
                                ("cal", 512, 0x0801_E000)):
        path = folder / f"{name}.bin"
        path.write_bytes(bytes((i * 13 + len(name)) % 256 for i in range(size)))
        images[name] = ImageSpec(name=name, path=path, address=address)
    recipe = Recipe(name="std", steps=(EraseStep(), WriteStep(images=("boot", "app")),
                                       WriteStep(images=("cal",)), VerifyStep(), ResetStep()))
    links = {f"bus-{i}": LinkSpec(name=f"bus-{i}", kind="sim",
                                  options=frozen_map({"bus": f"line-{i % 40}"}))
             for i in range(200)}
    devices = {}
    for i in range(DEVICES):
        after = (f"dev-{i - 1}",) if i % 10 else ()
        devices[f"dev-{i}"] = Device(name=f"dev-{i}", chip=CHIPS[i % len(CHIPS)],
                                     link=DeviceLink(link=f"bus-{i % 200}"), recipe="std",
                                     after=after)
    return Manifest(version=1, name="line", path=folder / "line.yaml", sha256="0" * 64,
                    files=(), simulate=True, images=frozen_map(images),
                    links=frozen_map(links), recipes=frozen_map({"std": recipe}),
                    recovery=frozen_map({"default": RecoveryPolicy(name="default", retries=1)}),
                    devices=frozen_map(devices), execution=Execution(max_parallel=16))


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        manifest = build(Path(folder))
        compile_plan(manifest)  # warm up: imports, chip database
        times = []
        for _ in range(5):
            start = time.perf_counter()
            plan = compile_plan(manifest)
            times.append(time.perf_counter() - start)
    best, median = min(times), statistics.median(times)
    print(f"compile {DEVICES} devices: {median:.3f} s (target < 1 s; best {best:.3f} s, "
          f"{len(plan.tasks)} tasks, {len(plan.stages)} stages, "
          f"estimated makespan {plan.estimate_s:.0f} s)")


if __name__ == "__main__":
    main()
