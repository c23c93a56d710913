"""The Rooms page: the public rooms open now with how many people are in each, what this person has not
read yet in the rooms they are in (and whether someone mentioned them there), and a way to open another."""

import streamlit as st

from shared.errors import RoomRefused
from shared.hub import RoomNameInvalid, clean_room_name
from shared.store import StoreUnavailable
from shared.web import membership, mentions, resources, routing

routing.own_navigation()
resources.settings_or_stop()
hub = resources.get_hub()

st.title(":material/meeting_room: Rooms")
st.caption("Each room has its own people, conversation and assistant memory. Nothing crosses between rooms.")

me = membership.participant_token()


def room_list() -> None:
    """Every public room, and the private ones this person is in; in theirs, what they have not seen yet."""
    try:
        # Private rooms are listed nowhere but to the people in them: only their invite link leads in.
        rooms = [(r, len(r.view().participants), r.unread(me)) for r in hub.rooms()]
    except StoreUnavailable as trouble:
        resources.wait_for_the_store(hub, trouble)
    rooms = sorted(
        ((r, n, u) for r, n, u in rooms if not r.private or u is not None), key=lambda x: (-x[1], x[0].name)
    )
    for room, count, unread in rooms:
        label = f"**{room.name}** · {count} {'person' if count == 1 else 'people'}"
        label += " · private" if room.private else ""
        label += " · locked: nobody new may join" if room.locked else ""
        icon = ":material/lock:" if room.locked else ":material/forum:"
        if unread is not None:  # a room this browser is in
            label += f" · you are in it · {unread.count} unread" if unread else " · you are in it · all read"
            if unread.mentions:
                label += (
                    f" · **mentions you** ({unread.mentions})"
                    if unread.mentions > 1
                    else " · **mentions you**"
                )
                icon = mentions.ICON
            elif unread:
                icon = ":material/mark_chat_unread:"
        st.page_link(routing.CHAT_PAGE, label=label, icon=icon, query_params={routing.ROOM_PARAM: room.name})
    if not rooms:
        st.caption("No public room is open right now: start one below.")


mentions.follow_mentions(hub, me, room_list)  # kept up to date every few seconds

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
