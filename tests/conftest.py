"""Fixtures shared by the AppTest suites (see tests/pages.py for the helpers themselves)."""

from tests.pages import fresh_app, gated  # noqa: F401  (pytest finds fixtures by name)
