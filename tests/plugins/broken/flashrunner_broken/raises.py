"""A plugin whose import-time code fails."""

raise RuntimeError("no licence server reachable")
