"""Mentions and unread messages in the other rooms this person is in, on whatever page of the app they
are: a short notice (`st.toast`) once per mention, naming the room and who wrote, and the count of unread
messages in the browser tab's title ("(3) Shared chat room").

What is unread and what is a mention is the room's rule (`shared/room/unread.py`); this module reads
this process's copies of the rooms (`Hub.copies`: no store round trip per tick but the person's "seen"
mark, and that only every few seconds) and says what it finds.

How a page keeps checking without rerunning because of others:
- the chat page's long run (`live.py`) calls `Notices.check` between its waits, at most once a second;
- the other pages (*Rooms*, *This room*, *About*) have no long run and no chat box: a fragment reruns
  every `TICK_SECONDS` and checks (`follow_mentions`). A periodic tick can swallow a message typed into a
  chat box (DESIGN.md, "The live page"); these pages have none: their forms send their values only when
  submitted, and a full rerun takes the place of a tick that comes at the same time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import streamlit as st

from shared.hub import Hub
from shared.messages import Message
from shared.room import Room
from shared.room.unread import MentionWatch
from shared.web.messages import escape_markdown
from shared.web.routing import APP_TITLE
from shared.web.session import session

CHECK_EVERY_SECONDS = 1.0  # the live page: how often it looks at the other rooms
TICK_SECONDS = 3.0  # the other pages: how often their fragment reruns to look
# What other pages' marks need to reach the store (`SEEN_FLUSH_SECONDS`): a room's unread count is read
# again this often even when nothing was said there (a tab of this person may have shown it meanwhile).
UNREAD_REFRESH_SECONDS = 5.0
MAX_NOTICES = 3  # per room and check: a person back after a while gets a few notices and a count
QUOTE_CHARS = 80
ICON = ":material/alternate_email:"


def title(unread: int) -> str:
    return f"({unread}) {APP_TITLE}" if unread else APP_TITLE


def notice(room: str, mention: Message) -> str:
    """The toast for one mention: who, where, and the start of what they said (as text, never Markdown)."""
    line = mention.text.strip().splitlines()[0] if mention.text.strip() else ""
    quote = line if len(line) <= QUOTE_CHARS else line[: QUOTE_CHARS - 1] + "…"
    return f"**{escape_markdown(mention.author)}** mentioned you in **{escape_markdown(room)}**: {escape_markdown(quote)}"


class Notices:
    """One page's look at the other rooms its person is in (`shown`: the room the page shows, left out)."""

    def __init__(self, hub: Hub, my_id: str, shown: str | None = None):
        self.hub, self.my_id, self.shown = hub, my_id, shown
        self.unread: dict[str, tuple[int, float]] = {}  # room key -> (unread count, when read)
        self.title_count: int | None = None  # what the tab's title says; None: not set by this page yet
        self.next_check = 0.0

    def check(self) -> None:
        """Announce new mentions, and put the unread count in the tab's title when it changed."""
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + CHECK_EVERY_SECONDS
        watches = session.mention_watches
        total, keys = 0, set()
        rooms = self.hub.copies()
        for room in rooms:
            me = room.member(self.my_id)
            if me is None or room.name == self.shown:
                continue
            key = f"{room.name} {room.generation}"
            keys.add(key)
            changed = self._follow(room, me.nickname, watches)
            count, read_at = self.unread.get(key, (0, -UNREAD_REFRESH_SECONDS))
            if changed or now - read_at >= UNREAD_REFRESH_SECONDS:
                unread = room.unread(self.my_id)
                count, read_at = (unread.count if unread else 0), now
                self.unread[key] = (count, read_at)
            total += count
        for key in set(self.unread) - keys:  # left, or closed: nothing unread there any more
            del self.unread[key]
        open_now = {room.name: f"{room.name} {room.generation}" for room in rooms}
        for key in [k for k in watches if open_now.get(k.split(" ")[0], k) != k]:
            del watches[key]  # that room opened again under its name: the old watch is for nothing
        if total != self.title_count:
            self.title_count = total
            st.set_page_config(page_title=title(total))

    def _follow(self, room: Room, nickname: str, watches: dict[str, MentionWatch]) -> bool:
        """Announce the room's new mentions of this person; whether the room changed since the last look."""
        key = f"{room.name} {room.generation}"
        watch = watches.get(key)
        if watch is None:
            # A tab that starts watching announces what no page of the person showed yet, not the history.
            seen = room.last_seen(self.my_id)
            version, messages = room.messages_after(seen or 0)
            after = seen if seen is not None else max((m.id for m in messages), default=0)
            watch = watches[key] = MentionWatch(after=after, version=version)
            self._tell(room.name, watch.news(messages, self.my_id, nickname))
            return True
        if room.version < watch.version:  # Redis came back without its last writes: follow it from here
            watch.version = room.version
        if room.version == watch.version:
            return False
        changes = room.changes_since(watch.version)
        watch.version = changes.version
        self._tell(room.name, watch.news(changes.messages, self.my_id, nickname))
        return True

    def _tell(self, room: str, mentions: list[Message]) -> None:
        for mention in mentions[:MAX_NOTICES]:
            st.toast(notice(room, mention), icon=ICON, duration="long")
        if len(mentions) > MAX_NOTICES:
            more = len(mentions) - MAX_NOTICES
            st.toast(
                f"…and {more} more mention{'s' if more != 1 else ''} of you in **{escape_markdown(room)}**.",
                icon=ICON,
                duration="long",
            )


def follow_mentions(hub: Hub, my_id: str, draw: Callable[[], None] | None = None) -> None:
    """On a page without a long run: look at the rooms every `TICK_SECONDS`, in a fragment that reruns
    alone; `draw` (the Rooms page's list) is drawn afresh with each look."""

    @st.fragment(run_every=TICK_SECONDS)
    def look() -> None:
        Notices(hub, my_id).check()
        if draw is not None:
            draw()

    look()
