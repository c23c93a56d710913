"""The chat room page: who you are, the shared conversation, and the box to write in."""

import streamlit as st

from shared import live, navigation, ui

navigation.own_navigation()
settings = ui.settings_or_stop()
hub = ui.get_hub()
room = hub.room(ui.room_name())

st.title(":material/forum: Shared chat room")
st.caption(f"Room **{room.name}** · invite people with this link: {ui.share_link(room.name)}")
ui.assistant_banner(settings, hub.assistant.label)
me = ui.current_participant(room)
ui.sidebar(room, me, settings, hub.assistant.label)
if me is None:
    ui.join_form(room)
    st.stop()

conversation = st.container()
# The box is drawn as this browser last showed it: Streamlit drops what a disabled widget sends, so
# disabling it in the very run that receives a message would lose a message typed just in time.
shown_busy = st.session_state.get("shown_busy", False)
ui.post(room, me, st.chat_input("Send message", key="message", disabled=shown_busy))
view = room.view()
st.session_state.rendered_state = live.rendered_state(view)
if view.busy != shown_busy:
    st.session_state.shown_busy = view.busy
    st.rerun()
ui.show_refusal()
ui.stop_button(room, me)
st.toggle(
    "Stream replies", value=True, key="stream_replies", help="Show the reply word by word as it is written."
)
with conversation:
    live.earlier_messages_button(view)
    if settings.refresh_mode == "poll":
        live.polled_conversation(room.name, me.id, settings)
    else:
        live.live_part(room, me.id, settings)
