"""The Rooms page: the public rooms open now with how many people are in each, and a way to open another."""

import streamlit as st

from shared.errors import RoomRefused
from shared.hub import RoomNameInvalid, clean_room_name
from shared.store import StoreUnavailable
from shared.web import resources, routing

routing.own_navigation()
resources.settings_or_stop()
hub = resources.get_hub()

st.title(":material/meeting_room: Rooms")
st.caption("Each room has its own people, conversation and assistant memory. Nothing crosses between rooms.")

try:
    # Private rooms are listed nowhere: only their invite link leads to them.
    rooms = sorted(
        (r for r in hub.rooms() if not r.private), key=lambda r: (-len(r.view().participants), r.name)
    )
except StoreUnavailable as trouble:
    resources.wait_for_the_store(hub, trouble)
for room in rooms:
    count = len(room.view().participants)
    st.page_link(
        routing.CHAT_PAGE,
        label=f"**{room.name}** · {count} {'person' if count == 1 else 'people'}"
        + (" · locked: nobody new may join" if room.locked else ""),
        icon=":material/lock:" if room.locked else ":material/forum:",
        query_params={routing.ROOM_PARAM: room.name},
    )
if not rooms:
    st.caption("No public room is open right now: start one below.")

with st.form("open-room"):
    name = st.text_input("Room name", placeholder="e.g. book-club", help="Letters a-z, digits, - and _.")
    private = st.checkbox(
        "Private room",
        help="Listed nowhere; only its invite link, shown on its page, lets people in.",
    )
    opened = st.form_submit_button("Open room", type="primary")
if opened:
    try:
        # A public room opens at its first join, like an address typed in: pressing the button alone
        # takes no place under MAX_ROOMS. A private room's secret is made here, so it opens now.
        room_name = clean_room_name(name)
        room = hub.open_room(room_name, private=True) if private else None
    except (RoomNameInvalid, RoomRefused) as error:
        st.error(str(error))
    else:
        params = {routing.ROOM_PARAM: room_name}
        if room is not None:
            params[routing.INVITE_PARAM] = room.invite_secret
        st.switch_page(routing.CHAT_PAGE, query_params=params)
