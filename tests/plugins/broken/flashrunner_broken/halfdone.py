"""Transport classes that do not keep the contract."""

from __future__ import annotations

from typing import Any, NoReturn


class HalfDone:
    """No options schema, no open(), and a kind that is not its entry point's."""

    kind = "half-done"
    capabilities: frozenset[Any] = frozenset()


class BadSchema:
    kind = "badschema"
    capabilities: frozenset[Any] = frozenset()
    options_schema = {"type": "objekt"}

    @classmethod
    def open(cls, request: Any) -> NoReturn:
        raise AssertionError("a non-conforming plugin was opened")

    @classmethod
    def speed_model(cls, options: Any, chip: Any) -> NoReturn:
        raise AssertionError("a non-conforming plugin was planned")

    @classmethod
    def resource_key(cls, link: str, options: Any) -> str:
        return link


class FakeUart(BadSchema):
    """Registers the built-in kind ``uart``: flashrunner must keep using its own."""

    kind = "uart"
    options_schema = {"type": "object"}
