"""Safe in front of strangers, page by page (AppTest): no page shows a secret setting, nothing a person or
the model wrote makes a browser load a picture from elsewhere, and every nickname is shown as typed.

The same in real Chromium, request by request: tests/e2e/test_strangers.py.
"""

from __future__ import annotations

import pytest

import shared.hub
from shared.assistant.offline import OfflineAssistant
from shared.config import PARSERS, SettingsError, parse_settings, redacted_url
from shared.errors import AssistantError
from shared.web.messages import pictures_as_links
from tests.fakes import ScriptedAssistant
from tests.pages import button, conversation, get_room, join, open_page, send, wait_until

pytestmark = pytest.mark.usefixtures("fresh_app")

PAGES = ("pages/chat.py", "pages/room.py", "pages/rooms.py", "pages/about.py")

# Every setting that can hold a secret, each with a value that holds a recognisable one. REDIS_URL's
# port is the test's Redis, which is given that password.
REDIS_PASSWORD = "redis-pw-4f9a1c"
SECRETS = {
    "OPENAI_API_KEY": ("sk-key-7b2e90", "sk-key-7b2e90"),
    "OPENAI_BASE_URL": (
        "https://base-user:base-pw-c3d8e1@127.0.0.1:9/v1?api-key=base-token-a61f02",
        ("base-user", "base-pw-c3d8e1", "base-token-a61f02"),
    ),
    "REDIS_URL": ("redis://:{password}@127.0.0.1:{port}/0", REDIS_PASSWORD),
}
# Settings that take any text and whose text is meant to be read: the assistant's name, model and rules.
SHOWN_AS_WRITTEN = {"OPENAI_MODEL", "OPENAI_ASSISTANT_ID", "ASSISTANT_NAME", "ASSISTANT_INSTRUCTIONS"}


def everything_sent(at) -> bytes:
    """Every element and block of the page as the browser would receive it (a table's cells included)."""

    def walk(node):
        if getattr(node, "proto", None) is not None:
            yield node.proto.SerializeToString()
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    return b"".join(walk(at._tree))


def test_every_setting_that_can_hold_text_is_either_hidden_or_meant_to_be_read():
    """A new setting that takes a password or an address cannot slip past the test below."""
    probe = {
        "OPENAI_API_KEY": "x",
        "OPENAI_BASE_URL": "https://u:p@h/v1",
        "REDIS_URL": "redis://u:p@h/0",
    }
    takes_text = set()
    for variable, parse in PARSERS.items():
        try:
            parse(probe.get(variable, "free text 123"))
        except ValueError:
            continue
        takes_text.add(variable)
    assert takes_text == set(SECRETS) | SHOWN_AS_WRITTEN


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw-1@10.0.0.5:6380/2", "redis://(hidden)@10.0.0.5:6380/2"),
        ("rediss://default:pw-1@[::1]:6380", "rediss://(hidden)@[::1]:6380"),
        ("redis://10.0.0.5/0?password=pw-1&db=2", "redis://10.0.0.5/0?password=(hidden)&db=(hidden)"),
        ("https://gw.example/v1?api-key=pw-1#pw-1", "https://gw.example/v1?api-key=(hidden)"),
        ("https://gw.example/v1?sk-pw-1&&v=2", "https://gw.example/v1?(hidden)&v=(hidden)"),
        ("http://localhost:11434/v1", "http://localhost:11434/v1"),
    ],
)
def test_an_address_is_shown_without_its_user_password_or_query_values(url, shown):
    assert redacted_url(url) == shown


@pytest.mark.promise_api_key
def test_no_page_shows_a_secret_setting_to_anyone(monkeypatch, redis_server):
    redis_server.client().config_set("requirepass", REDIS_PASSWORD)
    for variable, (value, _) in SECRETS.items():
        monkeypatch.setenv(variable, value.format(password=REDIS_PASSWORD, port=redis_server.port))
    monkeypatch.setattr(shared.hub, "make_assistant", OfflineAssistant)
    secrets = [s for _, kept in SECRETS.values() for s in ([kept] if isinstance(kept, str) else kept)]

    host = join("Alice")  # a member sees every page too, the host's controls included
    join("Bob")
    stranger = open_page()  # never joins
    for at in (host, stranger):
        for page in PAGES:
            at.switch_page(page).run()
            assert not at.exception, at.exception
            sent = everything_sent(at)
            assert b"WORD_DELAY_MS" in sent or page != "pages/about.py", "the settings table was read"
            for secret in secrets:
                assert secret.encode() not in sent, f"{page} shows {secret}"
    about = stranger.table[0].value
    shown = dict(zip(about["setting"], about["value"], strict=True))
    assert shown["OPENAI_API_KEY"] == "set (hidden)"
    assert shown["REDIS_URL"] == f"redis://(hidden)@127.0.0.1:{redis_server.port}/0"
    assert shown["OPENAI_BASE_URL"] == "https://(hidden)@127.0.0.1:9/v1?api-key=(hidden)"


@pytest.mark.parametrize(
    ("variable", "value", "secret"),
    [
        ("OPENAI_BASE_URL", "ftp://user:base-pw-c3d8e1@host/v1", "base-pw-c3d8e1"),
        ("OPENAI_BASE_URL", "http://host/v1 ?key=base-token-a61f02", "base-token-a61f02"),
        ("REDIS_URL", "redis://:redis-pw-4f9a1c@", "redis-pw-4f9a1c"),
    ],
)
def test_a_bad_setting_that_holds_a_secret_is_refused_without_repeating_it(
    monkeypatch, variable, value, secret
):
    with pytest.raises(SettingsError) as refused:
        parse_settings({variable: value})
    assert secret not in str(refused.value)
    monkeypatch.setenv(variable, value)
    at = open_page()
    assert at.error and variable in at.error[0].value
    assert secret.encode() not in everything_sent(at)


# --- pictures from elsewhere ------------------------------------------------------------------------

REMOTE = "http://127.0.0.1:9/p.gif"


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        (f"look ![a cat]({REMOTE})", rf"look \![a cat]({REMOTE})"),
        (f'![a cat]({REMOTE} "title")', rf'\![a cat]({REMOTE} "title")'),
        (
            f"![a cat][c] and ![c][] and ![c]\n\n[c]: {REMOTE}",
            rf"\![a cat][c] and \![c][] and \![c]" f"\n\n[c]: {REMOTE}",
        ),
        (f"!![two]({REMOTE})", rf"!\![two]({REMOTE})"),
        (rf"\\![after a backslash]({REMOTE})", rf"\\\![after a backslash]({REMOTE})"),
        (rf"\![already text]({REMOTE})", rf"\![already text]({REMOTE})"),
        (f"[a link]({REMOTE}) stays! [as it is]", f"[a link]({REMOTE}) stays! [as it is]"),
        ("", ""),
        # Code shows what was written, no backslash added; around it, pictures are links.
        (f"said `![a]({REMOTE})` and ![b]({REMOTE})", rf"said `![a]({REMOTE})` and \![b]({REMOTE})"),
        (f"``a ` ![a]({REMOTE})`` then ![b]({REMOTE})", rf"``a ` ![a]({REMOTE})`` then \![b]({REMOTE})"),
        (f"```\n![a]({REMOTE})\n```\n![b]({REMOTE})", rf"```" f"\n![a]({REMOTE})\n```\n" rf"\![b]({REMOTE})"),
        (f"```\n![a]({REMOTE}) never closed", f"```\n![a]({REMOTE}) never closed"),
        # Not code: a backtick left alone, or escaped, starts no span.
        (f"a ` ![a]({REMOTE})", rf"a ` \![a]({REMOTE})"),
        (rf"\`![a]({REMOTE})\`", rf"\`\![a]({REMOTE})\`"),
    ],
)
def test_every_form_of_a_markdown_picture_becomes_a_link(written, shown):
    assert pictures_as_links(written) == shown


@pytest.mark.promise_markup
def test_a_picture_in_a_message_reaches_the_other_page_as_a_link():
    alice = join("Alice")
    bob = join("Bob")
    written = f"see ![tracker]({REMOTE}) and ![ref][r]\n\n[r]: {REMOTE}"
    send(alice, written)
    wait_until(lambda: not get_room().busy)
    bob.run()
    said = [text for _, text in conversation(bob)]
    assert rf"see \![tracker]({REMOTE}) and \![ref][r]" f"\n\n[r]: {REMOTE}" in said
    assert not any(written in text for text in said), "the picture went to the page as written"


class FailingSummaries(ScriptedAssistant):
    """Its catch-ups fail with words its server wrote (here, a picture from elsewhere)."""

    def summarize(self, messages, for_nickname, usage=None, *, purse=None):
        raise AssistantError(f"The server says: ![see]({REMOTE})")


@pytest.mark.parametrize("assistant", [ScriptedAssistant, FailingSummaries])
def test_a_catch_up_summary_or_its_failure_shows_a_picture_as_a_link(monkeypatch, assistant):
    made = assistant()
    monkeypatch.setattr(shared.hub, "make_assistant", lambda settings: made)
    alice = join("Alice")
    join("Bob", open_page(token="bob-token"))
    send(alice, f"look ![x]({REMOTE})")  # the scripted summary repeats what was said
    wait_until(lambda: not get_room().busy)
    back = open_page(token="bob-token")  # Bob comes back to what he missed
    button(back, "Catch me up").click().run()

    def shown() -> list[str]:
        back.run()
        return [m.value for m in back.markdown if m.value.startswith("Summary for Bob")] + [
            w.value for w in back.warning if "could not catch you up" in w.value
        ]

    wait_until(lambda: shown())
    [summary] = shown()
    assert "![" in summary.replace("\\", ""), "the picture is in what the page shows"
    assert summary.count("![") == summary.count(r"\!["), f"a picture the browser would load: {summary}"


# --- nicknames --------------------------------------------------------------------------------------

CLUB = "book-club"
MARKUP_NICKNAME = "*Eve* :material/lock: <b>"  # emphasis, an icon and HTML, in 25 allowed characters


@pytest.mark.promise_markup
def test_a_nickname_written_as_markup_is_escaped_in_every_tooltip_caption_label_and_refusal():
    host = join("Alice", room=CLUB)  # a room someone opened has a host, whose page has Remove
    eve = join(MARKUP_NICKNAME, room=CLUB)
    send(eve, "hi")
    wait_until(lambda: not get_room(CLUB).busy)
    room = get_room(CLUB)
    eves_id = next(p.id for p in room.view().participants if p.nickname == MARKUP_NICKNAME)
    room.react(eves_id, next(m.id for m in room.view().messages if m.text == "hi"), "👍")
    escaped = r"\*Eve\* \:material/lock\: \<b\>"
    for at in (host, eve):
        for page in PAGES:
            at.switch_page(page).run()
            sent = everything_sent(at)
            assert MARKUP_NICKNAME.encode() not in sent, f"{page} shows the nickname unescaped"
            if page in ("pages/chat.py", "pages/room.py"):  # the pages that name the people in the room
                assert escaped.encode() in sent, f"{page} shows the nickname"
    host.switch_page("pages/room.py").run()
    [remove] = [b for b in host.button if b.label == "Remove"]
    assert remove.help.startswith(f"{escaped} leaves at once")

    again = join(MARKUP_NICKNAME, room=CLUB)  # the refusal names the nickname typed
    [refusal] = [e.value for e in again.error]
    assert refusal.startswith(r"Someone in the room is already called \*Eve\* \:material/lock\: \<b\>\.")
