"""The room page: what the room is for, who is here and who hosts, which assistant answers and how, and
what the room has used so far. The host's controls (Remove, Lock room) show only to the host."""

import streamlit as st

from shared.errors import ChatError
from shared.room import MAX_INSTRUCTIONS_CHARS
from shared.web import header, membership, mentions, notes, resources, routing, sidebar
from shared.web.messages import escape_markdown, local_time
from shared.web.session import Session, session

routing.own_navigation()
settings = resources.settings_or_stop()
hub = resources.get_hub()
mentions.follow_mentions(hub, membership.participant_token())  # mentions in the rooms they are in
room = routing.current_room()
if room is None:  # nobody is in it: looking opens nothing
    st.title(f":material/info: Room {routing.room_name()}")
    st.info("Nobody is in this room yet: it opens when someone joins it.", icon=":material/meeting_room:")
    st.page_link(routing.CHAT_PAGE, label="Join it on the chat page", icon=":material/forum:")
    st.stop()
st.title(f":material/info: Room {room.name}")
# A browser the host removed sees one sentence here, and nothing more.
me = membership.current_participant(room)
view = room.view()
name = escape_markdown(settings.assistant_name)  # in help texts and notes, which are Markdown

columns = st.columns(4)
columns[0].metric("People here", len(view.participants))
columns[1].metric("Messages", sum(m.role.value != "system" for m in view.messages))
usage = room.token_usage()
columns[2].metric("Tokens used", f"{usage.get('total_tokens', 0):,}", help=header.usage_help(usage))
budget, app_budget = settings.daily_token_budget, settings.app_daily_token_budget
room_today, app_today, _ = room.spending_today()
today = f"{room_today:,}" + (f" of {budget:,}" if budget else "")
columns[3].metric("Tokens today", today, help=header.budget_help(budget))
if app_budget:
    st.caption(
        f"Every room together today: {app_today:,} of {app_budget:,} tokens (the app's daily budget, "
        "APP_DAILY_TOKEN_BUDGET)."
    )
header.budget_stop(room, settings)  # which daily budget, the room's or the app's, stops the assistant

st.header("Room instructions")
editable = me is not None and room.may_edit_instructions(me.id)
if not editable:
    st.markdown(escape_markdown(view.instructions) if view.instructions else "*None written yet.*")
    if me is None:
        st.caption("Join the room on the chat page to write them.")
    elif view.status.instructions_locked:
        st.caption(
            ":material/lock: The host locked them: nobody can change them until the host unlocks them."
        )
    else:
        st.caption("Only the room's host can change them.")
else:
    with st.form("instructions"):
        text = st.text_area(
            "Room instructions",
            value=view.instructions,
            max_chars=MAX_INSTRUCTIONS_CHARS,
            placeholder="e.g. Book club for Dune; be the facilitator, ask one question at a time.",
            help=f"What this room is for and how {name} should take part, up to "
            f"{MAX_INSTRUCTIONS_CHARS:,} characters. The host may change them (anyone here, in a room "
            f"without a host) and everyone is told; {name} reads them as the room's wishes, below the "
            "app's own rules, which they cannot change, nor when it answers.",
        )
        saved = st.form_submit_button("Save instructions", icon=":material/save:")
    if saved:
        try:
            room.set_instructions(me.id, text)
        except ChatError as refusal:
            st.error(str(refusal))
        else:
            session.instructions_saved = True  # said once, after the rerun
            st.rerun()
    if session.take(Session.instructions_saved):
        st.success(f"Saved. Everyone in the room was told, and {name} reads them from its next reply on.")

st.header(notes.TITLE)
notes.live_notes_section(room, me.id if me is not None else None)

st.header("People")
sidebar.people(view.participants, me.id if me else None, view.host, view.status.locked)
if me is not None and view.host == me.id:
    # Drawn for the host alone; the room checks who is host again on every action.
    with st.container(border=True):
        st.markdown("**Host controls** · you opened this room, or were here longest")
        for person in view.participants:
            if person.id == me.id:
                continue
            left, right = st.columns([3, 1])
            left.markdown(f":material/person: {escape_markdown(person.nickname)}")
            if right.button(
                "Remove",
                key=f"remove-{person.id}",
                icon=":material/person_remove:",
                help=f"{escape_markdown(person.nickname)} leaves at once, and their browser cannot join again while the "
                "room is open.",
            ):
                try:
                    room.remove_participant(me.id, person.id)
                except ChatError as refusal:
                    st.error(str(refusal))
                else:
                    st.rerun()
        instructions_locked = st.checkbox(
            "Lock the room's instructions",
            value=view.status.instructions_locked,
            key=f"lock-instructions-{view.status.instructions_locked}",
            help="Nobody can change them, you included, until you unlock them; a host after you must unlock "
            "them first too.",
        )
        if instructions_locked != view.status.instructions_locked:
            try:
                room.lock_instructions(me.id, instructions_locked)
            except ChatError as refusal:
                st.error(str(refusal))
            else:
                st.rerun()
        locked = st.toggle(
            "Lock room",
            value=view.status.locked,
            key=f"lock-{view.status.locked}",
            help="Nobody new may join while the room is locked; the people inside stay. The Rooms page shows it.",
        )
        if locked != view.status.locked:
            try:
                room.lock(me.id, locked)
            except ChatError as refusal:
                st.error(str(refusal))
            else:
                st.rerun()

st.header("Assistant")
answered, passed = room.decisions()
st.markdown(
    f"**{name}** · {hub.assistant.label}  \n"
    f"Replies to: **{sidebar.POLICY_LABELS[view.policy].lower()}**  \n"
    f"When it can help: **{answered}** batch{'es' if answered != 1 else ''} answered, "
    f"**{passed}** let pass"
)
st.caption(f"Room opened {local_time(view.created_at, with_date=True)}.")
st.header("Transcript")
sidebar.transcript_downloads(room)
