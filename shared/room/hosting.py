"""What a room knows of its purpose and who runs it: the room's instructions, its host, removals, the lock.

The host is whoever opened the room (its first person), then, when the host leaves, the person present
longest. Only the host may remove someone or lock the room, and every such rule checks who is host in the
room's state as it is now: a page that drew a host control once proves nothing. The default room belongs to
nobody (its state says it is not `hosted`, unless DEFAULT_ROOM_HOST is on): nobody there removes or locks.

Each rule is a plain function over a `RoomChange` (testable without a room); `Room` runs them.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from shared.errors import HostOnly, JoinRefused, JoinRemoved, MessageRefused
from shared.messages import Role
from shared.store import RoomChange, RoomState

MAX_INSTRUCTIONS_CHARS = 2_000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
REMOVED = "The host removed you from this room, so you cannot join it again while it is open."
LOCKED = "This room is locked by its host: nobody new may join just now."
NOT_HOST = "Only the room's host can do that."
INSTRUCTIONS_HOST_ONLY = "Only the room's host can change its instructions."
INSTRUCTIONS_LOCKED = "The host locked the room's instructions; nothing was changed."


def clean_instructions(text: str) -> str:
    """The instructions as kept: NFC, no control characters but newlines and tabs, trimmed, bounded."""
    text = _CONTROL.sub("", unicodedata.normalize("NFC", text.replace("\r\n", "\n"))).strip()
    if len(text) > MAX_INSTRUCTIONS_CHARS:
        raise MessageRefused(
            f"The room's instructions have {len(text):,} characters; the limit is "
            f"{MAX_INSTRUCTIONS_CHARS:,}. Nothing was changed."
        )
    return text


# --- the rules ------------------------------------------------------------------------------------


def may_edit_instructions(state: RoomState, participant_id: str) -> bool:
    """Who may write what the room is for: where the room has a host, the host alone; in a room without
    one, anyone present. Nobody while the host keeps them locked."""
    if participant_id not in state.participants or state.closed or state.instructions_locked:
        return False
    return state.host is None or state.host == participant_id


def set_instructions(change: RoomChange, participant_id: str, text: str, now: datetime) -> None:
    """Write what the room is for (`may_edit_instructions`, else `HostOnly`); everyone is told."""
    state = change.state
    participant = state.participants.get(participant_id)
    if participant is None or state.closed or text == state.instructions:
        change.nothing()
        return
    if not may_edit_instructions(state, participant_id):
        raise HostOnly(INSTRUCTIONS_LOCKED if state.instructions_locked else INSTRUCTIONS_HOST_ONLY)
    state.instructions = text
    state.instructions_changes += 1
    what = "changed the room's instructions" if text else "cleared the room's instructions"
    change.add(Role.SYSTEM, f"{participant.nickname} {what}.", now)


def set_instructions_locked(change: RoomChange, host_id: str, locked: bool, now: datetime) -> None:
    """The host keeps the room's instructions as they are (nobody may change them, the host included,
    until the host unlocks them: a lock outlives a change of host), or opens them again."""
    state = change.state
    _check_host(state, host_id)
    if state.instructions_locked == locked:
        change.nothing()
        return
    state.instructions_locked = locked
    host = state.participants[host_id].nickname
    what = "locked the room's instructions" if locked else "unlocked the room's instructions"
    change.add(Role.SYSTEM, f"{host} {what}.", now)


def check_may_join(state: RoomState, participant_id: str) -> None:
    """A removed browser never comes back while the room is open; a locked room lets nobody new in."""
    if participant_id in state.removed:
        raise JoinRemoved(REMOVED)
    if state.locked and participant_id not in state.participants:
        raise JoinRefused(LOCKED)


def take_host_if_none(state: RoomState, participant_id: str) -> None:
    """Whoever opens the room (its first person) hosts it; a room that belongs to nobody has no host."""
    if not state.hosted:
        return
    if state.host is None or state.host not in state.participants:
        state.host = participant_id


def hand_host_on(change: RoomChange, now: datetime) -> None:
    """After someone left: if the host is gone, the person present longest hosts, and everyone is told."""
    state = change.state
    if state.host in state.participants:
        return
    if not state.participants or not state.hosted:
        state.host = None
        return
    heir = min(state.participants.values(), key=lambda p: p.joined_at)  # ties: the order they joined
    state.host = heir.id
    change.add(Role.SYSTEM, f"{heir.nickname} is now the host.", now)
    change.people_changed = True


def _check_host(state: RoomState, participant_id: str) -> None:
    if (
        state.closed
        or not state.hosted
        or state.host != participant_id
        or participant_id not in state.participants
    ):
        raise HostOnly(NOT_HOST)


def remove(
    change: RoomChange, host_id: str, participant_id: str, now: datetime, new_invite: str | None = None
) -> str | None:
    """The host removes someone: they leave at once, and their browser may not join again. A private
    room's invite link changes with it (`new_invite`, a fresh secret): in another browser, or a private
    window, the removed person would otherwise come back under a new nickname with the link they have.

    Returns the removed person's nickname; None if they were not here (already gone, or a second run).
    """
    state = change.state
    _check_host(state, host_id)
    if participant_id == host_id:
        raise HostOnly("The host cannot remove themselves; press Leave instead.")
    participant = state.participants.pop(participant_id, None)
    if participant_id not in state.removed:
        state.removed.append(participant_id)
    if participant is None:
        change.nothing()
        return None
    state.recent_posts.pop(participant_id, None)
    if state.invite_secret is not None and new_invite:
        state.invite_secret = new_invite
    host = state.participants[host_id]
    change.add(Role.SYSTEM, f"{host.nickname} removed {participant.nickname} from the room.", now)
    change.people_changed = True
    return participant.nickname


def set_locked(change: RoomChange, host_id: str, locked: bool, now: datetime) -> None:
    """The host locks the room (nobody new may join; the people inside stay) or opens it again."""
    state = change.state
    _check_host(state, host_id)
    if state.locked == locked:
        change.nothing()
        return
    state.locked = locked
    host = state.participants[host_id].nickname
    what = "locked the room: nobody new may join" if locked else "unlocked the room: anyone may join again"
    change.add(Role.SYSTEM, f"{host} {what}.", now)
    change.people_changed = True  # the host's controls and the people list show the lock
