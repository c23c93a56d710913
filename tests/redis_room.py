"""A room as Redis holds it, read straight from its keys (not through the app's store), for fault tests.

A fault test must show its fault hit at the moment it names: a reply in progress (its message streaming,
its key grown and not finished), the store's scripts loaded before a cut is armed (on a fresh Redis a
script's first call is answered `-NOSCRIPT`, and a cut armed then throws away that error, not the
script's answer). The key layout is the one `shared/store/redis.py` opens with.
"""

from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

import shared.store.redis as redis_store

LOBBY = "lobby"


def key(part: str, room: str = LOBBY) -> str:
    return f"chat:room:{room}:{part}"


def room_in_redis(client, room: str = LOBBY) -> list[dict]:
    """The room's messages as Redis holds them, oldest first (a streaming reply's words are in its own key:
    see `reply_in_progress`)."""
    raw = client.hgetall(key("msgs", room))
    return sorted((json.loads(value) for value in raw.values()), key=lambda m: m["id"])


def message_in_redis(client, message_id: int, room: str = LOBBY) -> dict:
    return json.loads(client.hget(key("msgs", room), message_id))


def newest_reply(client, room: str = LOBBY) -> dict | None:
    """The room's newest assistant message as Redis holds it, or None before the first."""
    replies = [m for m in room_in_redis(client, room) if m["role"] == "assistant"]
    return replies[-1] if replies else None


class ReplyKey(NamedTuple):
    """The reply being written, as its own key holds it: "REPLY_ID FENCE", a line break, the text so far."""

    id: int
    fence: int
    text: str


def reply_key(client, room: str = LOBBY) -> ReplyKey | None:
    return _reply_key(client.get(key("reply", room)))


def _reply_key(raw: str | None) -> ReplyKey | None:
    if raw is None:
        return None
    head, _, text = raw.partition("\n")
    reply_id, fence = head.split()
    return ReplyKey(int(reply_id), int(fence), text)


def reply_in_progress(client, room: str = LOBBY) -> ReplyKey | None:
    """The reply being written now: its message streaming and its key there; else None."""
    growing = reply_key(client, room)
    if growing is None:
        return None
    message = client.hget(key("msgs", room), growing.id)
    if message is None or json.loads(message)["status"] != "streaming":
        return None
    return growing


def words_of_reply(client, reply_id: int, room: str = LOBBY) -> str:
    """The words a reply holds now, whether it is still growing (its own key) or has ended (its message):
    both read in one transaction, so a turn ended between two reads cannot hide them."""
    with client.pipeline(transaction=True) as pipe:
        pipe.get(key("reply", room))
        pipe.hget(key("msgs", room), reply_id)
        raw_key, raw_message = pipe.execute()
    message, growing = json.loads(raw_message), _reply_key(raw_key)
    if message["status"] == "streaming" and growing is not None and growing.id == reply_id:
        return growing.text
    return message["text"]


def room_version(client, room: str = LOBBY) -> int:
    """The room's version: raised by every change and by every growth of a reply (which leaves the
    state's own `version` field alone)."""
    return int(client.get(key("version", room)) or 0)


def fence(client, room: str = LOBBY) -> int:
    """The room's fence counter: raised each time a worker takes the room's lease."""
    return int(client.get(key("fence", room)) or 0)


def store_scripts() -> dict[str, str]:
    """Every Lua script of the Redis store, by its name in `shared/store/redis.py` (`_GROW`: `GROW`)."""
    return {
        name.strip("_"): value
        for name, value in vars(redis_store).items()
        if name.startswith("_") and name.isupper() and isinstance(value, str) and "redis.call(" in value
    }


def script_sha(name: str) -> str:
    """The SHA1 that `EVALSHA` sends for the store's script `name` (as redis-py computes it)."""
    return hashlib.sha1(store_scripts()[name].encode()).hexdigest()


def load_scripts(client) -> None:
    """Load every script of the store into Redis's script cache (shared by every connection and database),
    as each one's first call would after `-NOSCRIPT`; fails if one is still missing."""
    scripts = store_scripts()
    assert "GROW" in scripts and "READ" in scripts, f"the store's scripts were not found: {sorted(scripts)}"
    for source in scripts.values():
        client.script_load(source)
    shas = [hashlib.sha1(source.encode()).hexdigest() for source in scripts.values()]
    assert all(client.script_exists(*shas)), "a script of the store is not in Redis's cache"
