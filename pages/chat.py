"""The chat room page: who you are, the shared conversation, and the box to write in."""

import streamlit as st

from shared.web import (
    actions,
    chat_box,
    conversation,
    header,
    live,
    membership,
    mentions,
    notes,
    resources,
    routing,
    sidebar,
)
from shared.web.join_form import first_join, join_form
from shared.web.search import search_box

routing.own_navigation()
settings = resources.settings_or_stop()
hub = resources.get_hub()
room = routing.current_room()

st.title(":material/forum: Shared chat room")
if room is None:  # nobody is in it: looking opens nothing, the first join does
    header.assistant_banner(settings, hub.assistant.label)
    first_join(routing.room_name())
    st.stop()
header.invite_line(room)
instructions_slot = st.empty()  # what the room is for, in one line: kept up to date by the live page
with instructions_slot.container():
    header.instructions_line(room.instructions)
notes_slot = st.empty()  # the room's notes, folded: kept up to date by the live page
with notes_slot.container():
    notes.notes_panel(room.notes)
header.assistant_banner(settings, hub.assistant.label)
header.budget_stop(room, settings)  # which daily budget, the room's or the app's, stops the assistant
me = membership.current_participant(room)
search_place = st.sidebar.container()  # at the top of the sidebar, once the person is in the room
people_slot, policy_slot = sidebar.sidebar(room, me, settings, hub.assistant.label)
if me is None:
    join_form(room.name, room.invite_secret)
    st.stop()
with search_place:
    search_box(room)  # before the conversation: a result chosen is on the page this run

chat_box.post(room, me, chat_box.chat_box())
earlier = conversation.earlier_messages_button(room.view())
slots = live.Slots(
    people=people_slot,
    policy=policy_slot,
    earlier=earlier,
    messages=st.container(),
    busy=st.empty(),
    stop=st.empty(),
    instructions=instructions_slot,
    notes=notes_slot,
)
chat_box.show_refusal()
actions.pending(room, me.id)
st.toggle(
    "Stream replies", value=True, key="stream_replies", help="Show the reply word by word as it is written."
)
live.follow_room(room, me, settings, slots, lambda: hub.problem, mentions.Notices(hub, me.id, room.name))
