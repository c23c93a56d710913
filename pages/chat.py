"""The chat room page: who you are, the shared conversation, and the box to write in."""

import streamlit as st

from shared import ui

settings = ui.settings_or_stop()
hub = ui.get_hub()
room = hub.room(ui.room_name())

st.title(":material/forum: Shared chat room")
ui.assistant_banner(settings, hub.assistant.label)
me = ui.current_participant(room)
ui.sidebar(room, me, settings, hub.assistant.label)
if me is None:
    ui.join_form(room)
    st.stop()

view = room.view()
st.session_state.rendered_state = ui.rendered_state(view)
conversation = st.container()
ui.post(room, me, st.chat_input("Send message", disabled=view.busy))
st.toggle(
    "Stream replies", value=True, key="stream_replies", help="Show the reply word by word as it is written."
)
with conversation:
    ui.live_conversation_fragment(room.name, me.id, settings)
