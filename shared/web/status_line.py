"""The status line under the conversation: whom the assistant is replying to (and what it is doing, such
as searching the web) and who waits next, Stop while a reply is written, and a warning while the rooms' store cannot be reached."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.config import Settings
from shared.room import Room, RoomStatus
from shared.web.messages import escape_markdown

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator


class StatusLine:
    def __init__(
        self, room: Room, my_id: str, settings: Settings, busy: DeltaGenerator, stop: DeltaGenerator
    ):
        self.room, self.my_id, self.settings = room, my_id, settings
        self.busy, self.stop = busy, stop
        self.status: RoomStatus | None = None
        self.problem_shown: str | None = None
        self.line_shown: str | None = None  # what the busy line shows ("" for nothing): unchanged, not resent

    def show(self, status: RoomStatus) -> None:
        before, self.status = self.status, status
        self.busy_line(status)
        if before is None or before.turn != status.turn or before.replying_to != status.replying_to:
            self.stop_button(status)

    def busy_line(self, status: RoomStatus) -> None:
        line = self.line(status)
        if line == self.line_shown:
            return  # the status changed, but not what this line says of it: nothing to send
        self.line_shown = line
        if line:
            self.busy.caption(line)
        else:
            self.busy.empty()

    def line(self, status: RoomStatus) -> str:
        name = escape_markdown(self.settings.assistant_name)
        waiting = ", ".join(escape_markdown(n) for n in status.waiting)
        if status.replying_to:
            to = ", ".join(escape_markdown(n) for n in status.replying_to)
            line = f":material/edit: **{name}** is replying to {to}…"
            if status.activity:  # a hosted tool runs: "searching the web…", "drawing…"
                line = f":material/hourglass_top: **{name}** is replying to {to} · {escape_markdown(status.activity)}"
            return line + (f" · next: {waiting}" if waiting else "")
        if waiting:
            return f":material/schedule: {waiting} · waiting for **{name}**"
        return ""

    def stop_button(self, status: RoomStatus) -> None:
        """While a reply is written anyone may stop it; a click belongs to the turn it was drawn for."""
        if not status.replying_to:
            self.stop.empty()
        elif self.stop.button(
            "Stop",
            key=f"stop-{status.turn}",
            icon=":material/stop_circle:",
            help="Stop the reply being written",
        ):
            self.room.stop_reply(self.my_id, status.turn)

    def show_problem(self, problem: str | None) -> None:
        """While the rooms' store (Redis) cannot be reached, the line says so; the page keeps what it has."""
        if problem == self.problem_shown:
            return
        self.problem_shown = problem
        if problem:
            self.busy.warning(problem, icon=":material/cloud_off:")
            self.line_shown = None  # the warning took the line's place
        elif self.status is not None:
            self.busy_line(self.status)
