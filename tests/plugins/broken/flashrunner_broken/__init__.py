"""Broken transport plugins (see pyproject.toml)."""
