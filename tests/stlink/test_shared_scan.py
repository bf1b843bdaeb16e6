"""SharedScan: links that connect together share one bus scan begun after they asked."""

from __future__ import annotations

import threading
import time

from transports.usb import SharedScan


def _wait_until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.001)


def test_callers_arriving_during_a_scan_share_the_next_one() -> None:
    shared: SharedScan[int] = SharedScan()
    release = threading.Event()
    started: list[int] = []

    def scan() -> int:
        started.append(len(started) + 1)
        number = len(started)
        if number == 1:
            release.wait(5)
        return number

    results: dict[str, int] = {}

    def call(name: str) -> None:
        results[name] = shared.run(scan)

    first = threading.Thread(target=call, args=("first",))
    first.start()
    _wait_until(lambda: started == [1])
    late = [threading.Thread(target=call, args=(f"late-{i}",)) for i in range(8)]
    for thread in late:
        thread.start()
    time.sleep(0.05)   # they are all waiting: none may take scan 1, begun before they asked
    assert started == [1]
    release.set()
    for thread in [first, *late]:
        thread.join(5)
    assert results.pop("first") == 1
    assert set(results.values()) == {2}   # one more scan served all eight
    assert started == [1, 2]


def test_a_caller_alone_scans_every_time() -> None:
    shared: SharedScan[int] = SharedScan()
    count = iter(range(1, 100))
    assert [shared.run(lambda: next(count)) for _ in range(3)] == [1, 2, 3]


def test_a_failed_scan_fails_every_caller_that_waited_for_it_and_the_next_one_runs() -> None:
    shared: SharedScan[int] = SharedScan()
    release = threading.Event()
    calls: list[str] = []

    def failing() -> int:
        calls.append("scan")
        if len(calls) == 1:
            release.wait(5)
            return 0
        raise OSError("bus gone")

    errors: list[BaseException] = []

    def call() -> None:
        try:
            shared.run(failing)
        except OSError as error:
            errors.append(error)

    first = threading.Thread(target=call)
    first.start()
    _wait_until(lambda: calls == ["scan"])
    waiters = [threading.Thread(target=call) for _ in range(3)]
    for thread in waiters:
        thread.start()
    time.sleep(0.05)
    release.set()
    for thread in [first, *waiters]:
        thread.join(5)
    assert len(errors) == 3 and all(str(error) == "bus gone" for error in errors)
    assert shared.run(lambda: 7) == 7


def test_concurrent_connects_share_scans_of_the_simulated_bus() -> None:
    from tests.stlink.conftest import attach_probe, backend_of
    from transports.chips import chip_database
    from transports.sim import SimulationWorld
    from transports.sim.world import DeviceProfile
    from transports.stlink.usb import find_candidates
    from transports.usb import shared_scan_of

    world = SimulationWorld()
    part = chip_database().part("stm32f103c8")
    for i in range(16):
        world.profiles[f"d{i}"] = DeviceProfile(quirks={"serial": f"{i:024d}"})
        attach_probe(world, f"d{i}", part)
    backend = backend_of(world)
    probes = list(backend.devices)
    assert len(probes) == 16
    # The first scan stops at the first probe's serial until the other fifteen
    # links have asked, so they must all wait for (and share) the second one.
    gate = threading.Event()
    first = probes[0]
    table = first.string_table

    def held_table() -> tuple[str | bytes, ...]:
        gate.wait(5)
        return table()

    first.string_table = held_table  # type: ignore[method-assign]
    before = sum(probe.counts.control for probe in probes)
    found: list[list[str]] = []

    def connect() -> None:
        found.append(sorted(c.serial for c in find_candidates(backend)))

    threads = [threading.Thread(target=connect) for _ in range(16)]
    threads[0].start()
    shared = shared_scan_of(backend, "stlink")
    for thread in threads[1:]:
        thread.start()
    _wait_until(lambda: shared.waiting == 15)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert found == [sorted(f"{i:024d}" for i in range(16))] * 16
    reads = sum(probe.counts.control for probe in probes) - before
    assert reads == 2 * 16 * 2   # two scans, each the LANGID table and the serial of 16
