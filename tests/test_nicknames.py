"""Nickname rules: each broken rule has its own message; names are trimmed and normalised."""

from __future__ import annotations

import pytest

from shared.assistant.offline import OfflineAssistant
from shared.errors import JoinRefused
from shared.nicknames import MAX_NICKNAME_CHARS, clean_nickname, nickname_key
from shared.room import Room
from tests.fakes import fast_settings

pytestmark = pytest.mark.promise_nickname_rules


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
@pytest.mark.promise_quoted_nicknames
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


# --- look-alikes: Unicode's confusable skeletons and mixed scripts (UTS #39) ------------------------


@pytest.mark.parametrize(
    "look_alike",
    ["\u0410lice", "\u0251lice", "a1ice", "\U0001d400lice"],
    ids=["cyrillic-a", "latin-alpha", "digit-one-for-l", "mathematical-bold-a"],
)
def test_names_that_look_alike_in_another_alphabet_share_a_key(look_alike):
    assert nickname_key(look_alike) == nickname_key("Alice")


def test_a_whole_name_in_look_alike_cyrillic_letters_shares_the_latin_names_key():
    assert nickname_key("\u0420\u0435\u0440\u0435") == nickname_key("Pepe")  # Рере, all Cyrillic


@pytest.mark.parametrize("different", ["Alicia", "Bob", "Zoë", "Zoe", "Alice2"])
def test_names_that_only_share_letters_keep_their_own_keys(different):
    assert nickname_key(different) != nickname_key("Alice")


@pytest.mark.parametrize(
    "mixed",
    ["\u0410lice", "P\u0430yp\u0430l", "C\u0430tGPT", "Alice \u0418\u0432\u0430\u043d\u043e\u0432\u0430"],
    ids=["cyrillic-a-in-latin", "cyrillic-a-twice", "assistant-with-cyrillic-a", "latin-and-cyrillic-words"],
)
def test_a_name_that_mixes_look_alike_alphabets_is_refused(mixed):
    assert refusal(mixed) == (
        "A nickname cannot mix alphabets that look alike, such as Latin and Cyrillic letters. "
        "Please write it in one alphabet."
    )


@pytest.mark.parametrize(
    "welcome",
    [
        "\u0418\u0440\u0438\u043d\u0430",
        "\u03a3\u03bf\u03c6\u03af\u03b1",
        "山田たろう",
        "Ali علي",
        "Jean-Luc O'Brien",
    ],
    ids=["cyrillic", "greek", "japanese", "latin-and-arabic", "latin-punctuation"],
)
def test_names_in_one_alphabet_or_a_usual_mix_are_welcome(welcome):
    assert clean_nickname(welcome, "CatGPT") == welcome


def test_the_assistants_name_in_look_alike_letters_is_refused():
    assert refusal("\u0421\u043e\u0440\u0430", assistant_name="Copa") == (
        "Copa is the assistant's name. Please pick another nickname."
    )  # Сора, all Cyrillic


def test_a_look_alike_of_someone_present_is_refused_by_the_room():
    room = Room("lobby", fast_settings(), OfflineAssistant(fast_settings()))
    try:
        room.join("id-pepe", "Pepe", "tab-pepe")
        with pytest.raises(JoinRefused) as refused:
            room.join("id-other", "\u0420\u0435\u0440\u0435", "tab-other")  # Рере, all Cyrillic
        assert (
            str(refused.value) == "Someone in the room is already called Рере. Please pick another nickname."
        )
        with pytest.raises(JoinRefused, match="cannot mix alphabets"):
            room.join("id-other", "P\u0435pe", "tab-other")
        assert [p.nickname for p in room.view().participants] == ["Pepe"]
    finally:
        room.close()
