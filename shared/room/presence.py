"""Who is in the room: the rules for joining, leaving, and the reaper letting go of people who went away.

A person is here while one of their browser sessions shows the room. Sessions say so with a heartbeat; a
closed tab says so at once; a session that vanished (its process was killed) just stops beating. The
reaper removes a person whose every session went away more than the leave grace period ago, or whom no
session has shown for the heartbeat timeout (`who_went_away`, read from the store's presence).

Each rule is a plain function over a `RoomChange` (testable without a room); `Room` runs them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from shared.errors import JoinRefused, RoomClosed
from shared.messages import Participant, Role
from shared.nicknames import nickname_key
from shared.room.hosting import check_may_join, hand_host_on, take_host_if_none
from shared.store import RoomChange, Seen

CLOSED = "This room has just closed. Please reload the page to join it afresh."
# A tab of someone who pressed Leave notices within a third of the heartbeat timeout (its live page
# checks), or when it is next drawn; past a few timeouts the mark is dropped with the next Leave.
LEFT_KEPT_HEARTBEATS = 3


def join(
    change: RoomChange, participant_id: str, nickname: str, max_participants: int, now: datetime
) -> Participant:
    """Add a person (`nickname` already cleaned); someone already here is simply here."""
    state = change.state
    if state.closed:
        raise RoomClosed(CLOSED)
    if participant_id in state.participants:
        change.nothing()
        return state.participants[participant_id]
    check_may_join(state, participant_id)
    if nickname_key(nickname) in {nickname_key(p.nickname) for p in state.participants.values()}:
        raise JoinRefused(f"Someone in the room is already called {nickname}. Please pick another nickname.")
    if len(state.participants) >= max_participants:
        raise JoinRefused(f"The room is full ({max_participants} people). Please try again later.")
    state.left_on_purpose.pop(participant_id, None)
    participant = state.participants[participant_id] = Participant(participant_id, nickname, now)
    state.empty_since = None
    take_host_if_none(state, participant_id)
    change.add(Role.SYSTEM, f"{nickname} joined.", now)
    change.people_changed = True
    return participant


def remove(change: RoomChange, participant_id: str, clock: float, now: datetime) -> None:
    """The person is gone (left, or reaped): everyone is told, and the host passes on if it was them."""
    state = change.state
    participant = state.participants.pop(participant_id)
    state.recent_posts.pop(participant_id, None)
    if not state.participants:
        state.empty_since = clock
    change.add(Role.SYSTEM, f"{participant.nickname} left.", now)
    change.people_changed = True
    hand_host_on(change, now)


def leave(
    change: RoomChange, participant_id: str, heartbeat_timeout: float, clock: float, now: datetime
) -> None:
    """The person pressed Leave: marked as gone on purpose, so no tab of theirs rejoins them quietly."""
    state = change.state
    if participant_id not in state.participants:
        change.nothing()
        return
    kept = heartbeat_timeout * LEFT_KEPT_HEARTBEATS
    state.left_on_purpose = {p: t for p, t in state.left_on_purpose.items() if clock - t < kept}
    state.left_on_purpose[participant_id] = clock
    remove(change, participant_id, clock, now)


def reap(change: RoomChange, leaving: Iterable[str], clock: float, now: datetime) -> None:
    """The reaper lets go of those who went away (and are still here: a second run finds them gone)."""
    gone = sorted(set(leaving) & set(change.state.participants))
    if not gone:
        change.nothing()
    for participant_id in gone:
        remove(change, participant_id, clock, now)


def reap_who_went_away(change: RoomChange, clock: float, timeout: float, grace: float, now: datetime) -> None:
    """The reaper's round: who went away is judged from the presence read in this change, and their
    sessions are forgotten with it, with those of people whose join never came. A person who came back
    meanwhile (a reload: a new session) is seen by the change, which runs again: neither let go, nor left
    with no session for the reaper to judge them by (a ghost who would keep the room open)."""
    leaving, strangers = who_went_away(
        change.presence(), set(change.state.participants), clock, timeout, grace
    )
    reap(change, leaving, clock, now)
    for participant_id in leaving | strangers:
        change.forget_presence(participant_id)


def who_went_away(
    presence: dict[tuple[str, str], Seen], present: set[str], clock: float, timeout: float, grace: float
) -> tuple[set[str], set[str]]:
    """From the store's presence: who leaves now, and whose sessions never joined (their join failed or
    never came) and are long silent, so the store may forget them."""
    sessions: dict[str, list[Seen]] = {}
    for (participant_id, _), seen in presence.items():
        sessions.setdefault(participant_id, []).append(seen)
    leaving = set()
    for participant_id in present & set(sessions):
        seen = sessions[participant_id]
        alive = [s for s in seen if not s.gone and clock - s.when < timeout]
        last = max(s.when for s in seen)
        went = max((s.when for s in seen if s.gone), default=None)
        if clock - last >= timeout or (not alive and went is not None and clock - went >= grace):
            leaving.add(participant_id)
    strangers = {
        participant_id
        for participant_id in set(sessions) - present
        if all(clock - s.when >= timeout for s in sessions[participant_id])
    }
    return leaving, strangers
