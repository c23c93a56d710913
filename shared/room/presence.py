"""Who is in the room: joining, browser sessions coming and going, leaving, and the reaper's rule.

A person is here while one of their browser sessions shows the room. Sessions say so with a heartbeat
(`attach`); a closed tab says so at once (`detach`); a session that vanished (its process was killed) just
stops beating. The reaper removes a person whose every session went away more than the leave grace period
ago, or whom no session has shown for the heartbeat timeout.
"""

from __future__ import annotations

import contextlib
import hmac
import time

from shared.errors import JoinRefused, RoomClosed
from shared.messages import Participant, Role
from shared.nicknames import clean_nickname, nickname_key
from shared.room.core import CLOSED, RoomCore
from shared.room.hosting import check_may_join, hand_host_on, take_host_if_none
from shared.store import RoomChange, StoreUnavailable

# A tab of someone who pressed Leave notices within a third of the heartbeat timeout (its live page
# checks), or when it is next drawn; past a few timeouts the mark is dropped with the next Leave.
LEFT_KEPT_HEARTBEATS = 3
# How often a process tells the store what its pages drew: what someone saw a moment before they went
# matters little to "New since you were last here", and every flush is three commands.
SEEN_FLUSH_SECONDS = 5.0


class Presence(RoomCore):
    _seen_flush_at = 0.0  # monotonic time before which `flush_seen` waits
    # --- who may come in ----------------------------------------------------------------------------

    @property
    def invite_secret(self) -> str | None:
        return self._record.state.invite_secret

    @property
    def private(self) -> bool:
        return self.invite_secret is not None

    def admits(self, invite: str | None) -> bool:
        """Whether `invite` opens this room: any public room, a private one only with its secret."""
        secret = self.invite_secret
        if secret is None:
            return True
        if not invite:
            return False
        return hmac.compare_digest(invite.encode(), secret.encode())

    # --- people -------------------------------------------------------------------------------------

    def join(self, participant_id: str, nickname: str, session_id: str) -> Participant:
        """Add a person, or attach one more browser session of a person already here."""
        nickname = clean_nickname(nickname, self.settings.assistant_name)
        self.store.seen(self.name, participant_id, session_id, self._clock())  # before: the reaper sees it

        def join(change: RoomChange) -> Participant:
            state = change.state
            if state.closed:
                raise RoomClosed(CLOSED)
            if participant_id in state.participants:
                change.nothing()
                return state.participants[participant_id]
            check_may_join(state, participant_id)
            taken = {nickname_key(p.nickname) for p in state.participants.values()}
            if nickname_key(nickname) in taken:
                raise JoinRefused(
                    f"Someone in the room is already called {nickname}. Please pick another nickname."
                )
            if len(state.participants) >= self.settings.max_participants:
                raise JoinRefused(
                    f"The room is full ({self.settings.max_participants} people). Please try again later."
                )
            state.left_on_purpose.pop(participant_id, None)
            participant = state.participants[participant_id] = Participant(
                participant_id, nickname, self._now()
            )
            state.empty_since = None
            take_host_if_none(state, participant_id)
            change.add(Role.SYSTEM, f"{nickname} joined.", self._now())
            change.people_changed = True
            return participant

        participant = self._change(join)
        self._attach_here(session_id)
        return participant

    def attach(self, participant_id: str, session_id: str) -> Participant | None:
        """A browser session shows the room (a heartbeat); None if the person is no longer here."""
        return self.attach_all([(participant_id, session_id)]).get(session_id)

    def attach_all(self, sessions: list[tuple[str, str]]) -> dict[str, Participant]:
        """Browser sessions (participant, session) show the room: one heartbeat for all of them, one
        store command. Returns the sessions whose person is still here, by session id."""
        with self._record.lock:
            participants = self._record.state.participants
            here = {s: participants[p] for p, s in sessions if p in participants}
        if not here or self.closed:
            return {}
        when = self._clock()
        with contextlib.suppress(StoreUnavailable):  # a missed heartbeat is made up by the next one
            self.store.seen_all(self.name, {(p, s): when for p, s in sessions if s in here})
        for session_id in here:
            self._attach_here(session_id)
        return here

    def here(self, participant_id: str) -> bool:
        """Whether the person is in the room now, as this process's copy says."""
        with self._record.lock:
            return participant_id in self._record.state.participants and not self.closed

    def _attach_here(self, session_id: str) -> None:
        with self._sessions_lock:
            self._sessions.add(session_id)

    def detach(self, participant_id: str, session_id: str) -> None:
        """A browser session went away; the person leaves after the grace period unless one comes back."""
        with self._sessions_lock:
            self._sessions.discard(session_id)
        with self._record.lock:
            here = participant_id in self._record.state.participants
        if here:
            with contextlib.suppress(StoreUnavailable):  # then the heartbeat timeout tells instead
                self.store.seen(self.name, participant_id, session_id, self._clock(), gone=True)

    def leave(self, participant_id: str) -> None:
        """The person pressed Leave: they leave from every tab, and no tab of theirs rejoins them quietly."""

        def leave(change: RoomChange) -> None:
            if participant_id not in change.state.participants:
                change.nothing()
                return
            state = change.state
            now = self._clock()
            kept = self.settings.heartbeat_timeout_seconds * LEFT_KEPT_HEARTBEATS
            state.left_on_purpose = {p: t for p, t in state.left_on_purpose.items() if now - t < kept}
            state.left_on_purpose[participant_id] = now
            self._remove(change, participant_id)

        self._change(leave)
        self.store.forget_presence(self.name, participant_id)

    def left_on_purpose(self, participant_id: str) -> bool:
        with self._record.lock:
            return participant_id in self._record.state.left_on_purpose

    def _remove(self, change: RoomChange, participant_id: str) -> None:
        state = change.state
        participant = state.participants.pop(participant_id)
        state.recent_posts.pop(participant_id, None)
        if not state.participants:
            state.empty_since = self._clock()
        change.add(Role.SYSTEM, f"{participant.nickname} left.", self._now())
        change.people_changed = True
        hand_host_on(change, self._now())

    def reap(self) -> None:
        """Remove people whose tabs closed more than the grace period ago, or went silent."""
        now = self._clock()
        timeout, grace = self.settings.heartbeat_timeout_seconds, self.settings.leave_grace_seconds
        sessions: dict[str, list[tuple[float, bool]]] = {}
        for (participant_id, _), seen in self.store.presence(self.name).items():
            sessions.setdefault(participant_id, []).append(seen)
        with self._record.lock:
            present = set(self._record.state.participants)
        leaving = set()
        for participant_id in present & set(sessions):
            seen = sessions[participant_id]
            alive = [s for s in seen if not s.gone and now - s.when < timeout]
            last = max(s.when for s in seen)
            went = max((s.when for s in seen if s.gone), default=None)
            if now - last >= timeout or (not alive and went is not None and now - went >= grace):
                leaving.add(participant_id)
        for participant_id in set(sessions) - present:
            if all(now - s.when >= timeout for s in sessions[participant_id]):
                self.store.forget_presence(self.name, participant_id)  # a join that never happened
        if not leaving:
            return

        def reap(change: RoomChange) -> None:
            gone = leaving & set(change.state.participants)
            if not gone:
                change.nothing()
            for participant_id in gone:
                self._remove(change, participant_id)

        self._change(reap)
        for participant_id in leaving:
            self.store.forget_presence(self.name, participant_id)

    # --- what each person has seen (for "New since you were last here") ---------------------------

    def mark_seen(self, participant_id: str, session_id: str, message_id: int) -> None:
        """A page of this person drew the room up to `message_id`; a closed tab's page no longer counts.

        Kept here and told to the store by `flush_seen` (the hub's reaper, every `SEEN_FLUSH_SECONDS`):
        one command for every page of this process, not one per page.
        """
        with self._sessions_lock:
            if session_id in self._sessions and message_id > self._seen_due.get(participant_id, 0):
                self._seen_due[participant_id] = message_id

    def flush_seen(self, *, now: bool = False) -> None:
        """Tell the store what this process's pages drew since the last time, at most every
        `SEEN_FLUSH_SECONDS` (`now`: at once, as this process stops serving the room)."""
        with self._sessions_lock:
            if not now and time.monotonic() < self._seen_flush_at:
                return
            due, self._seen_due = self._seen_due, {}
            self._seen_flush_at = time.monotonic() + SEEN_FLUSH_SECONDS
        if not due:
            return
        try:
            self.store.mark_seen(self.name, due)
        except StoreUnavailable:
            with self._sessions_lock:  # told with the next flush
                for participant_id, message_id in due.items():
                    self._seen_due[participant_id] = max(message_id, self._seen_due.get(participant_id, 0))

    def last_seen(self, participant_id: str) -> int | None:
        """The newest message a page of this person showed in this room; None if none ever did."""
        with self._sessions_lock:
            due = self._seen_due.get(participant_id)
        try:
            stored = self.store.last_seen(self.name, participant_id)
        except StoreUnavailable:
            stored = None
        return max((n for n in (due, stored) if n is not None), default=None)
