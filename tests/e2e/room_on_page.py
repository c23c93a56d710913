"""A page compared with the room as Redis holds it, exactly: every message's bubble or line, in order, its
author, its whole text, its status (a reply broken off or stopped, a message waiting or not answered) and
every system line ("Alice joined.", a failure in red).

Redis is read straight from its keys (`tests/redis_room.py`); the page is read from its DOM: the
conversation's container holds one element per message, a chat bubble (a header caption, the text, then
captions: its note) or a system line (one caption). Icons are left out; times are left out (the browser's
time zone draws them); Markdown marks are left out on both sides (the page draws them as formatting).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from shared.web.conversation import PAGE_OF_MESSAGES
from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_two_people import turn_over
from tests.redis_room import room_in_redis

NOTES = {  # what a bubble says under its text, by the message's status (shared/web/messages.py)
    ("assistant", "error"): "This reply broke off before it was finished.",
    ("user", "queued"): "waiting for the assistant",
    ("user", "unanswered"): "not answered: it goes to the assistant again with the next message",
}


class Entry(NamedTuple):
    """One message as a page shows it: a "bubble" or a "line" (a system line); `who`: the bubble's header
    without its time ("Alice (you)", "CatGPT · to Alice", "CatGPT · writing…"), or a line's icon ("info",
    "error"); `text`: its whole text; `note`: what the bubble says under it."""

    kind: str
    who: str
    text: str
    note: str = ""


def plain(text: str) -> str:
    """Text as a page shows it, for comparing: no Markdown marks, one space between words."""
    return " ".join(re.sub(r"[`*_\\]", "", text).split())


def expected(messages: list[dict], me: str) -> list[Entry]:
    """What the page of `me` (a nickname) must show for `messages`, as Redis holds them."""
    entries = []
    for m in messages:
        if m["role"] == "system":
            entries.append(Entry("line", "error" if m["status"] == "error" else "info", plain(m["text"])))
            continue
        if m["role"] == "assistant" and not m["text"] and not m["attachments"]:
            continue  # a reply that has no words yet is not drawn
        note = NOTES.get((m["role"], m["status"]), "")
        if m["role"] == "assistant":
            who = m["author"] + (f" · to {', '.join(m['reply_to'])}" if m["reply_to"] else "")
            if m["status"] == "streaming":
                who = f"{m['author']} · writing…"
            elif m["status"] == "stopped":
                note = f"Stopped by {m['stopped_by']}."
        else:
            who = m["author"] + (" (you)" if m["author"] == me else "")
        text = "message deleted" if m["deleted"] else plain(m["text"])
        entries.append(Entry("bubble", who, text, plain(note)))
    return entries


# In document order, each element of the conversation's container (the block that holds the bubbles): a
# bubble's header, text and notes, or a system line's icon and text. Icons are read apart from the words.
_READ_PAGE = """() => {
  const first = document.querySelector('[data-testid="stChatMessage"]');
  if (!first) return null;
  const block = first.closest('[data-testid="stLayoutWrapper"]').parentElement;
  // Icons are words in a Material font (":material/info:" draws the word "info"): marked, left out.
  const isIcon = (el) => el.children.length === 0 && getComputedStyle(el).fontFamily.includes("Material");
  const iconsOf = (el) => [...el.querySelectorAll("*")].filter(isIcon);
  const words = (el) => {
    const icons = iconsOf(el);
    icons.forEach((icon) => icon.setAttribute("data-icon", ""));
    const copy = el.cloneNode(true);
    icons.forEach((icon) => icon.removeAttribute("data-icon"));
    copy.querySelectorAll("[data-icon]").forEach((icon) => icon.remove());
    document.body.appendChild(copy);  // innerText needs a rendered element for its line breaks
    const text = copy.innerText;
    copy.remove();
    return text;
  };
  const entries = [];
  for (const child of block.children) {
    const bubble = child.querySelector('[data-testid="stChatMessage"]');
    if (bubble) {
      const captions = [...bubble.querySelectorAll('[data-testid="stCaptionContainer"]')];
      const texts = [...bubble.querySelectorAll('[data-testid="stMarkdownContainer"]')].filter(
        (el) => !el.closest('[data-testid="stCaptionContainer"]') && !el.closest('[data-testid="stPopover"]'));
      entries.push({kind: "bubble", who: captions.length ? words(captions[0]) : "",
                    text: texts.map(words).join("\\n"), notes: captions.slice(1).map(words)});
      continue;
    }
    const caption = child.querySelector('[data-testid="stCaptionContainer"]');
    if (caption && !child.querySelector('[data-testid="stButton"]')) {
      const icon = iconsOf(caption)[0];
      entries.push({kind: "line", who: icon ? icon.textContent : "", text: words(caption), notes: []});
    } else if (child.innerText.trim()) {
      entries.push({kind: "other", who: "", text: child.innerText, notes: []});
    }
  }
  return entries;
}"""

TIME = r" · \d{1,2}:\d{2}(?: UTC)?"  # a message's time, as `local_time` draws it


def page_entries(page) -> list[Entry] | None:
    """What the page shows, message by message; None before its first bubble. The catch-up divider ("New
    since you were last here") is no message and is left out."""
    raw = page.evaluate(_READ_PAGE)
    if raw is None:
        return None
    entries = []
    for item in raw:
        if item["kind"] == "other":
            if "New since you were last here" in item["text"]:
                continue
            entries.append(Entry("other", "", plain(item["text"])))
        elif item["kind"] == "line":
            entries.append(
                Entry("line", item["who"], plain(re.sub(TIME + r"\s*$", "", item["text"].strip())))
            )
        else:
            who = plain(re.sub(TIME, "", item["who"].split("\n")[0]))
            notes = " | ".join(plain(note) for note in item["notes"] if plain(note))
            entries.append(Entry("bubble", who, plain(item["text"]), notes))
    return entries


def page_differs(page, messages: list[dict], me: str) -> str | None:
    """None if the page of `me` shows exactly `messages` (the room as Redis holds it), else what differs."""
    want = expected(messages, me)
    assert len(want) <= PAGE_OF_MESSAGES, "a longer room is not all on one page: compare fewer messages"
    shown = page_entries(page)
    if shown == want:
        return None
    if shown is None:
        return "the page shows no message"
    for index, (a, b) in enumerate(zip(shown, want, strict=False)):
        if a != b:
            return f"entry {index}: the page shows {a}, Redis holds {b}"
    return f"the page shows {len(shown)} entries, Redis holds {len(want)}: {shown[len(want) :] or want[len(shown) :]}"


def every_page_shows_the_room(redis_server, pages: dict[str, object]) -> None:
    """Each page (by its person's nickname) shows exactly the room in Redis, once every turn is over."""
    client = redis_server.client()
    for name, page in pages.items():
        wait_until(lambda page=page: turn_over(page), DEADLINE_SECONDS, f"{name}: the turn to be over")

    def all_match() -> bool:
        messages = room_in_redis(client)
        return all(page_differs(page, messages, name) is None for name, page in pages.items())

    try:
        wait_until(all_match, DEADLINE_SECONDS, "every page to show the room exactly as Redis holds it")
    except AssertionError:
        messages = room_in_redis(client)
        for name, page in pages.items():
            page.screenshot(path=str(ARTIFACTS / f"room-{name}.png"), full_page=True)
        problems = {name: page_differs(page, messages, name) for name, page in pages.items()}
        raise AssertionError(f"pages differ from the room in Redis: {problems}") from None
