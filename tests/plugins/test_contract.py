"""The plugin contract in-process: the conformance check, the base class, py.typed."""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from runner.errors import ConnectError, Refused, RunnerError, WriteError, error_categories
from transports.base import (
    Capability,
    ChipIdentity,
    LinkRequest,
    Progress,
    ResetMode,
    simulated_endpoints,
)
from transports.chips import ChipDatabase, FlashBlock
from transports.plugin import TransportBase
from transports.registry import BUILTIN, check_transport_class, load_transport

ROOT = Path(__file__).resolve().parents[2]


class Minimal(TransportBase):
    """The six primitives and nothing else."""

    kind: ClassVar[str] = "minimal"

    def attach(self) -> None:
        self.attached = True

    def detach(self) -> None:
        self.detached = getattr(self, "detached", 0) + 1

    def read_identity(self) -> ChipIdentity:
        return ChipIdentity(dev_id=self.request.chip.dev_id)

    def erase_blocks(self, blocks: Sequence[FlashBlock], progress: Progress) -> None:
        pass

    def program(self, address: int, data: bytes, progress: Progress) -> None:
        raise self.error(WriteError, "write-protected", address=address)

    def read_memory(self, address: int, length: int, progress: Progress) -> bytes:
        return bytes(length)


@pytest.fixture
def session(chips: ChipDatabase) -> Minimal:
    return Minimal.open(LinkRequest(device="board-7", link="fixture", kind="minimal",
                                    options={}, chip=chips.part("stm32f103c8")))


@pytest.mark.parametrize("kind", sorted(BUILTIN))
def test_every_built_in_kind_keeps_the_contract(kind: str) -> None:
    klass = load_transport(kind)
    assert check_transport_class(klass, kind) == []
    assert simulated_endpoints(klass)   # every built-in can be rehearsed


@pytest.mark.parametrize("kind", sorted(BUILTIN))
def test_a_built_in_declares_exactly_the_endpoints_its_module_asks_for(kind: str) -> None:
    klass = load_transport(kind)
    tree = ast.parse(Path(inspect.getfile(klass)).read_text())
    def is_provider(node: ast.expr) -> bool:   # request.endpoints, or a local `endpoints`
        return (isinstance(node, ast.Attribute) and node.attr == "endpoints") or \
            (isinstance(node, ast.Name) and node.id == "endpoints")

    asked = {node.func.attr for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and is_provider(node.func.value)}
    assert asked == simulated_endpoints(klass)


def test_an_endpoint_the_provider_does_not_have_is_reported() -> None:
    class Gpio(Minimal):
        kind = "gpio"
        simulation: ClassVar[frozenset[str]] = frozenset({"gpio_chip", "clock"})

    [problem] = check_transport_class(Gpio, "gpio")
    assert problem.startswith("`simulation` names endpoints the provider does not have: "
                              "gpio_chip (it has can_bus, clock,")


def test_the_base_class_conforms_once_the_primitives_are_written() -> None:
    assert check_transport_class(Minimal, "minimal") == []
    assert simulated_endpoints(Minimal) == frozenset()   # not simulatable unless declared


def test_a_class_without_its_primitives_is_reported() -> None:
    class Unfinished(TransportBase):
        kind = "unfinished"

    problems = check_transport_class(Unfinished, "unfinished")
    assert len(problems) == 1
    assert "does not implement attach, detach, erase_blocks" in problems[0]


def test_the_conformance_check_names_each_missing_part() -> None:
    class Bare:
        capabilities = frozenset({"write"})
        simulation = ("serial_port",)

    problems = check_transport_class(Bare, "bare")
    assert "has no `kind` class attribute (the manifest's kind, a string)" in problems
    assert "has no `options_schema` (a JSON Schema of its options)" in problems
    assert "`capabilities` must be a frozenset of transports.base.Capability" in problems
    assert any(p.startswith("`simulation` must be a frozenset") for p in problems)
    assert {"has no `open` class method", "has no `speed_model` class method",
            "has no `resource_key` class method"} <= set(problems)
    assert check_transport_class(Bare(), "bare")[0].endswith("is not a class")


def test_an_open_schema_is_not_an_options_schema() -> None:
    class ListSchema(Minimal):
        kind = "list-schema"
        options_schema: ClassVar[Any] = {"type": "array"}

    assert check_transport_class(ListSchema, "list-schema") == [
        '`options_schema` must describe an object ("type": "object")']


def test_operations_before_connect_say_so(session: Minimal) -> None:
    with pytest.raises(ConnectError) as info:
        session.write(0x08000000, b"\x00" * 4)
    assert str(info.value).startswith("write on link fixture before it was connected on board-7")
    assert (info.value.transport, info.value.device) == ("fixture", "board-7")


def test_what_the_link_does_not_offer_is_refused_clearly(session: Minimal) -> None:
    session.connect()
    with pytest.raises(Refused) as info:
        session.checksum(0x08000000, 1024)
    assert "link fixture (kind minimal) does not offer an on-target checksum" in str(info.value)
    assert "verify by read-back" in (info.value.hint or "")
    assert error_categories(info.value) & {"nack", "protocol", "fault"} == {"nack"}
    for call in (lambda: session.reset(ResetMode.SOFTWARE), session.read_option_bytes):
        with pytest.raises(Refused, match="does not offer"):
            call()


def test_errors_raised_through_the_helper_name_the_device_and_link(session: Minimal) -> None:
    session.connect()
    with pytest.raises(WriteError) as info:
        session.write(0x08000000, b"\x00" * 4)
    assert str(info.value) == "write-protected on board-7"
    assert info.value.fields()["transport"] == "fixture"
    assert info.value.address == 0x08000000


def test_close_is_safe_twice_and_before_connect(session: Minimal) -> None:
    session.close()
    session.connect()
    assert session.identify().dev_id == session.request.chip.dev_id
    session.close()
    session.close()
    assert session.detached == 1


def test_a_capability_set_defaults_to_what_every_link_does() -> None:
    assert Minimal.capabilities == {Capability.ERASE_PAGES, Capability.WRITE, Capability.READ}
    assert Minimal.resource_key("fixture", {}) == "minimal:fixture"


def test_an_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(RunnerError, match="unknown transport kind 'usb3'") as info:
        load_transport("usb3")
    assert "stlink" in (info.value.hint or "")


def test_a_simulated_plan_never_opens_a_kind_that_cannot_be_simulated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import runner.launch
    from runner.compiler import compile_plan
    from runner.errors import PlanError
    from runner.manifest import load_manifest
    from transports import registry

    monkeypatch.setitem(registry.BUILTIN, "minimal", f"{__name__}:Minimal")
    monkeypatch.setattr(Minimal, "attach", _never_attached)
    (tmp_path / "app.bin").write_bytes(bytes(64))
    path = tmp_path / "m.yaml"
    path.write_text("manifest: 1\nname: by-hand\nimages: {app: {file: app.bin, "
                    "address: 0x08000000}}\ntransports: {fixture: {kind: minimal}}\n"
                    "recipes: {std: [{write: [app]}]}\ndevices: {board: {chip: stm32f103c8, "
                    "transport: fixture, recipe: std}}\n")
    plan = dataclasses.replace(compile_plan(load_manifest(path)), simulate=True)
    with pytest.raises(PlanError, match="kind minimal, which cannot be simulated; nothing was"):
        runner.launch.execute(plan)


def _never_attached(self: Minimal) -> None:
    raise AssertionError("a rehearsal opened a link that cannot be simulated")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_the_packages_ship_py_typed() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = config["tool"]["setuptools"]["package-data"]
    for package in ("runner", "transports", "schemas"):
        assert (ROOT / package / "py.typed").is_file()
        assert "py.typed" in package_data[package]
