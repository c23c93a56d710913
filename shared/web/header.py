"""The top of the room's pages: its invite link, its instructions in one line, which assistant answers,
and the words for what the room has used (tokens today, against the budgets) and for a budget that stops
the assistant."""

from __future__ import annotations

import streamlit as st

from shared.config import Settings
from shared.room import Room
from shared.spending import stopped_line
from shared.web.messages import escape_markdown
from shared.web.routing import INVITE_PARAM, ROOM_PARAM

INSTRUCTIONS_LINE_CHARS = 160  # of the room's instructions, on the line under the chat page's title


def share_link(room: Room) -> str:
    """The address that brings someone into this room as themselves; a private room's carries its secret."""
    base = (st.context.url or "").split("?")[0] or "http://localhost:8501/"
    link = f"{base}?{ROOM_PARAM}={room.name}"
    return link + f"&{INVITE_PARAM}={room.invite_secret}" if room.private else link


def invite_line(room: Room) -> None:
    if room.private:
        st.caption(
            f":material/lock: Private room **{room.name}** · listed nowhere; only this invite link lets people "
            f"in: `{share_link(room)}`"
        )
    else:
        st.caption(f"Room **{room.name}** · invite people with this link: {share_link(room)}")


def instructions_line(text: str) -> None:
    """The room's instructions in one short line (escaped: people wrote them), or nothing; one element."""
    if not text:
        st.empty()
        return
    flat = " ".join(text.split())
    short = flat[:INSTRUCTIONS_LINE_CHARS] + ("…" if len(flat) > INSTRUCTIONS_LINE_CHARS else "")
    st.caption(f":material/description: **Room instructions:** {escape_markdown(short)}")


def assistant_banner(settings: Settings, assistant_label: str) -> None:
    """Say plainly which assistant answers, and explain settings that no longer do anything."""
    if settings.offline:
        st.info(
            f"**{escape_markdown(settings.assistant_name)} is the offline demo assistant here**: no AI model "
            "is connected, so it only greets people, tells the time and says who is in the room. To talk to a "
            "real model, set `OPENAI_API_KEY` in `.env` (or `.streamlit/secrets.toml`) and restart the app.",
            icon=":material/cloud_off:",
        )
    if settings.openai_assistant_id:
        st.warning(
            "`OPENAI_ASSISTANT_ID` is ignored: OpenAI shut the Assistants API down on 2026-08-26, so the "
            "assistant is now set by `OPENAI_MODEL`, `ASSISTANT_NAME` and `ASSISTANT_INSTRUCTIONS`.",
            icon=":material/history:",
        )


def usage_help(usage: dict[str, int]) -> str:
    if not usage:
        return "Tokens the model used for this room's conversation (none yet, or the offline assistant)."
    return f"Input {usage.get('input_tokens', 0):,} · output {usage.get('output_tokens', 0):,} tokens."


def budget_stop(room: Room, settings: Settings) -> None:
    """One warning while a daily budget (the room's or the app's, named) stops the assistant; else nothing."""
    stopped = room.budget_spent()
    if stopped is not None:
        st.warning(stopped_line(stopped, settings), icon=":material/savings:")


def budget_help(budget: int) -> str:
    if not budget:
        return "Tokens this room's assistant used since midnight UTC; no daily budget is set (DAILY_TOKEN_BUDGET)."
    return (
        f"Tokens this room's assistant used since midnight UTC, against its daily budget of {budget:,}: "
        "once reached, it answers again the next day."
    )
