"""The chat room page: who you are, the shared conversation, and the box to write in."""

import streamlit as st

from shared import live, navigation, ui

navigation.own_navigation()
settings = ui.settings_or_stop()
hub = ui.get_hub()
room = ui.current_room()

st.title(":material/forum: Shared chat room")
if room.private:
    st.caption(
        f":material/lock: Private room **{room.name}** · listed nowhere; only this invite link lets people in: "
        f"`{ui.share_link(room)}`"
    )
else:
    st.caption(f"Room **{room.name}** · invite people with this link: {ui.share_link(room)}")
instructions_slot = st.empty()  # what the room is for, in one line: kept up to date by the live page
with instructions_slot.container():
    ui.instructions_line(room.instructions)
ui.assistant_banner(settings, hub.assistant.label)
me = ui.current_participant(room)
people_slot, policy_slot = ui.sidebar(room, me, settings, hub.assistant.label)
if me is None:
    ui.join_form(room)
    st.stop()

# The box never closes: Streamlit drops what a disabled widget sends, and a message written while the
# assistant replies simply waits for the next turn.
# Pictures and PDFs come along; their type is checked from their content, not the name (`ui.post`).
ui.post(room, me, st.chat_input("Send message", key="message", accept_file="multiple"))
live.earlier_messages_button(room.view())
slots = live.Slots(
    people=people_slot,
    policy=policy_slot,
    messages=st.container(),
    busy=st.empty(),
    stop=st.empty(),
    instructions=instructions_slot,
)
ui.show_refusal()
st.toggle(
    "Stream replies", value=True, key="stream_replies", help="Show the reply word by word as it is written."
)
live.follow_room(room, me.id, settings, slots, lambda: hub.problem)
