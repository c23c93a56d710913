"""The room page: who is here, which assistant answers and how, and what the room has used so far."""

import streamlit as st

from shared import navigation, ui

navigation.own_navigation()
settings = ui.settings_or_stop()
hub = ui.get_hub()
room = ui.current_room()
view = room.view()

st.title(f":material/info: Room {room.name}")
columns = st.columns(4)
columns[0].metric("People here", len(view.participants))
columns[1].metric("Messages", sum(m.role.value != "system" for m in view.messages))
usage = room.token_usage()
columns[2].metric("Tokens used", f"{usage.get('total_tokens', 0):,}", help=ui.usage_help(usage))
budget = settings.daily_token_budget
today = f"{room.tokens_today():,}" + (f" of {budget:,}" if budget else "")
columns[3].metric("Tokens today", today, help=ui.budget_help(budget))

st.subheader("People")
ui.people(view.participants, None)
st.subheader("Assistant")
st.markdown(
    f"**{ui.escape_markdown(settings.assistant_name)}** · {hub.assistant.label}  \n"
    f"Replies to: **{ui.POLICY_LABELS[view.policy].lower()}**"
)
st.caption(f"Room opened {ui.local_time(view.created_at, with_date=True)}.")
st.subheader("Transcript")
ui.transcript_downloads(room)
