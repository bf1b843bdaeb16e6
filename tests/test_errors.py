"""The error tree: builtin mix-ins, categories for recovery, structured fields."""

from __future__ import annotations

from runner.errors import (
    BusFault,
    ChipMismatch,
    LinkTimeout,
    ManifestError,
    ManifestIssue,
    ProtocolError,
    Refused,
    ReplyError,
    RunnerError,
    VerifyError,
    WriteError,
    error_categories,
)


def test_errors_mix_in_the_matching_builtins() -> None:
    assert isinstance(LinkTimeout("x"), TimeoutError)
    assert isinstance(ChipMismatch("x"), ConnectionError)
    issue = ManifestIssue(file="m.yaml", line=3, column=5, where="devices.a", message="bad")
    assert isinstance(ManifestError([issue]), ValueError)
    assert all(isinstance(e, RunnerError) for e in (LinkTimeout("x"), VerifyError("x")))


def test_categories_include_the_ancestors() -> None:
    assert {"verify", "flash", "transport"} <= error_categories(VerifyError("x"))
    assert {"chip-mismatch", "connect"} <= error_categories(ChipMismatch("x"))


def test_a_refused_write_is_also_a_nack() -> None:
    refused = WriteError("Write Memory refused", address=0x08000000, also=("nack",))
    assert {"write", "nack"} <= error_categories(refused)
    assert "nack" not in error_categories(WriteError("not erased"))


def test_refusals_nonsense_replies_and_bus_faults_are_three_disjoint_categories() -> None:
    refused, nonsense, fault = Refused("NACK"), ProtocolError("short reply"), BusFault("AP fault")
    assert (refused.category, nonsense.category, fault.category) == ("nack", "protocol", "fault")
    named = {"nack", "protocol", "fault"}
    assert error_categories(refused) & named == {"nack"}
    assert error_categories(nonsense) & named == {"protocol"}
    assert error_categories(fault) & named == {"fault"}
    assert all(isinstance(e, ReplyError) for e in (refused, nonsense, fault))


def test_non_runner_errors_are_internal_except_timeouts() -> None:
    assert error_categories(KeyError("x")) == {"internal"}
    assert error_categories(TimeoutError()) == {"timeout"}


def test_fields_carry_what_an_auditor_needs() -> None:
    error = VerifyError("differs", address=0x08000100, expected=b"\x01", actual=b"\x00",
                        hint="erase first")
    fields = error.fields()
    assert fields["address"] == "0x08000100"
    assert (fields["expected"], fields["actual"]) == ("01", "00")
    assert str(error) == "differs (erase first)"
    assert ProtocolError("nack", command="0x31", reply=b"\x1f").fields()["reply"] == "1f"


def test_manifest_error_lists_every_issue_located() -> None:
    issues = [ManifestIssue(file="m.yaml", line=line, column=1, where="w", message="bad")
              for line in (2, 9)]
    text = str(ManifestError(issues))
    assert "m.yaml:2:1: w: bad" in text and "m.yaml:9:1: w: bad" in text
    assert "2 problems found" in text
