"""Nickname rules: each broken rule has its own message; names are trimmed and normalised."""

from __future__ import annotations

import pytest

from shared.errors import JoinRefused
from shared.nicknames import MAX_NICKNAME_CHARS, clean_nickname, nickname_key


def refusal(raw: str, assistant_name: str = "CatGPT") -> str:
    with pytest.raises(JoinRefused) as refused:
        clean_nickname(raw, assistant_name)
    return str(refused.value)


@pytest.mark.parametrize("empty", ["", "   ", "\u3000", None])
def test_empty_nickname_is_refused(empty):
    assert refusal(empty) == "Please enter a nickname."


def test_too_long_nickname_is_refused_saying_the_limit_and_its_length():
    assert (
        refusal("x" * (MAX_NICKNAME_CHARS + 1))
        == "A nickname can have at most 32 characters; this one has 33."
    )


def test_longest_allowed_nickname_is_kept_whole():
    assert clean_nickname("x" * MAX_NICKNAME_CHARS, "CatGPT") == "x" * MAX_NICKNAME_CHARS


@pytest.mark.parametrize(
    "hidden",
    ["Al\x00ice", "Al\tice", "Al\nice", "Al\u200bice", "Al\u202eice", "\u2060Alice", "Alice\x7f"],
    ids=["nul", "tab", "newline", "zero-width-space", "right-to-left-override", "word-joiner", "delete"],
)
def test_nickname_with_control_or_invisible_characters_is_refused(hidden):
    assert refusal(hidden) == "A nickname cannot contain control or invisible characters."


@pytest.mark.parametrize("forged", ["Alice] [Bob", "[admin]", "Bob]"])
def test_nickname_with_square_brackets_is_refused_so_it_cannot_forge_an_author(forged):
    assert refusal(forged) == "A nickname cannot contain square brackets."


@pytest.mark.parametrize("assistant", ["CatGPT", "catgpt", "CATGPT", " CatGPT ", "ＣａｔＧＰＴ"])
def test_assistants_name_in_any_case_is_refused(assistant):
    assert refusal(assistant) == "CatGPT is the assistant's name. Please pick another nickname."


def test_assistants_name_follows_the_settings():
    assert (
        refusal("tom", assistant_name="Tom") == "Tom is the assistant's name. Please pick another nickname."
    )
    assert clean_nickname("CatGPT", "Tom") == "CatGPT"


@pytest.mark.parametrize("reserved", ["system", "System", "SYSTEM"])
def test_system_is_reserved(reserved):
    assert (
        refusal(reserved)
        == f"“{reserved}” is reserved for the app's own notices. Please pick another nickname."
    )


def test_each_rule_has_its_own_message():
    messages = {refusal(""), refusal("x" * 40), refusal("a\x00b"), refusal("CatGPT"), refusal("system")}

    assert len(messages) == 5


def test_nickname_is_trimmed():
    assert clean_nickname("  Bob \u3000", "CatGPT") == "Bob"


def test_nickname_is_normalised_to_its_plain_form():
    assert clean_nickname("Ｂｏｂ", "CatGPT") == "Bob"
    assert clean_nickname("Zoe\u0301", "CatGPT") == "Zoé"


def test_unicode_letters_and_emoji_are_welcome():
    assert clean_nickname("Zoë 🐱", "CatGPT") == "Zoë 🐱"


@pytest.mark.parametrize("same", ["alice", "ALICE", " Alice ", "Ａlice", "ａｌｉｃｅ"])
def test_names_that_look_alike_share_a_key(same):
    assert nickname_key(same) == nickname_key("Alice")


def test_different_names_have_different_keys():
    assert nickname_key("Alice") != nickname_key("Alicia")
