"""Audit-grade records: the hash chain, the ledger, run attestations, verify and report.

The audit log itself is written by :mod:`runner.logging`; this package holds
what makes it evidence (the chain format, the per-host ledger, the signed
in-toto attestation) and what reads it back for people and machines
(``flashrunner audit verify`` / ``report``, JUnit XML, the HTML page). See the
README, "The audit log".
"""
