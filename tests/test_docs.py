"""The docs stay true to the code: every setting is explained in `.env.example` and the README."""

import re
from pathlib import Path

import pytest

from shared.config import PARSERS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("document", [".env.example", "README.md"])
def test_every_setting_is_documented(document):
    text = (ROOT / document).read_text(encoding="utf-8")
    named = set(re.findall(r"\b[A-Z][A-Z_]{3,}\b", text))
    assert set(PARSERS) <= named, f"{document} misses {sorted(set(PARSERS) - named)}"


def test_env_example_names_only_real_settings():
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert set(re.findall(r"^([A-Z_]+)=", text, re.MULTILINE)) == set(PARSERS)
