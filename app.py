"""Entry point: `streamlit run app.py`. Sets up the page and the navigation between the pages."""

import streamlit as st

st.set_page_config(page_title="Shared chat room", page_icon=":material/forum:", layout="centered")
st.navigation(
    [
        st.Page("pages/chat.py", title="Chat room", icon=":material/forum:", default=True),
        st.Page("pages/room.py", title="This room", icon=":material/info:"),
        st.Page("pages/rooms.py", title="Rooms", icon=":material/meeting_room:"),
        st.Page("pages/about.py", title="About", icon=":material/help:"),
    ]
).run()
