"""A plugin whose dependency is not installed."""

import flashrunner_broken_dependency_that_is_not_installed  # noqa: F401


class Transport:
    kind = "needs-missing"
