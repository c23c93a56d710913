"""A reply worker's lease on a room: one worker writes a room's turns at a time, across processes.

The store hands out the lease with a fence (in memory a plain flag; with Redis a key that expires unless
renewed, so a worker whose process died loses it within the store's `lease_seconds`). Every write the
worker makes carries the fence, and the room's state says which fence may write now, so a worker that
lost its lease cannot write after the one that took the room over.

The renewal policy, in one place: renew every third of the lease's time; a renewal the store could not
take is tried again soon, until two thirds of the lease's time have passed since the last one that
worked; then the lease is lost. A lost lease is final: its worker writes nothing more at once (`lost`,
and `on_lost` stops the turn it writes), and the worker that takes the room over ends that turn as
broken off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.errors import ChatError
from shared.store import StoreUnavailable

if TYPE_CHECKING:
    from shared.store import Store

log = logging.getLogger(__name__)

HOLDER = f"{socket.gethostname()}:{os.getpid()}"  # this process, as a lease names its holder
LEASE_RETRY_SECONDS = 1.0  # how often a process checks whether a busy room's worker is still alive


class Lease:
    """The lease one worker holds on one room, from `take` until `release`."""

    def __init__(self, store: Store, room: str, fence: int, on_lost: Callable[[], None]):
        self.store = store
        self.room = room
        self.fence = fence
        self.lost = threading.Event()  # set once its renewal failed for good
        self._on_lost = on_lost
        self._done = threading.Event()

    @classmethod
    def take(cls, store: Store, room: str, on_lost: Callable[[], None]) -> Lease | None:
        """The room's lease, renewed from now on (with a store other processes share); None if another
        worker holds it or the store cannot be reached."""
        try:
            fence = store.take_lease(room, HOLDER)
        except StoreUnavailable:
            fence = None
        if fence is None:
            return None
        lease = cls(store, room, fence, on_lost)
        if store.shared:
            threading.Thread(target=lease._renew, name=f"lease-{room}", daemon=True).start()
        return lease

    @property
    def held(self) -> bool:
        return not self.lost.is_set() and not self._done.is_set()

    def release(self) -> None:
        """Stop renewing and give the lease back (if the store still counts it as this one's)."""
        self._done.set()
        with contextlib.suppress(ChatError):
            self.store.release_lease(self.room, self.fence)

    def _renew(self) -> None:
        seconds = self.store.lease_seconds
        renewed = time.monotonic()
        wait = seconds / 3
        while not self._done.wait(wait):
            try:
                held = self.store.renew_lease(self.room, self.fence)
            except StoreUnavailable:
                if time.monotonic() - renewed < seconds * 2 / 3:
                    wait = min(seconds / 10, 0.2)  # once more soon: it may still be renewed in time
                    continue
                held = False
            if not held:
                log.warning("room %s: the worker lost its lease; it writes nothing more", self.room)
                self.lost.set()
                self._on_lost()
                return
            renewed, wait = time.monotonic(), seconds / 3
