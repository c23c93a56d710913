"""The About page: what the app is, how a message travels, and the settings in effect (never a key, a
password or a token: `Settings.shown`)."""

import streamlit as st

from shared.web import membership, mentions, resources, routing
from shared.web.messages import escape_markdown

routing.own_navigation()
settings = resources.settings_or_stop()
hub = resources.get_hub()

st.title(":material/help: About this app")
name = escape_markdown(settings.assistant_name)
if settings.offline:
    kind = "the offline demo assistant: no AI model is connected, so it only greets people, tells the time and says who is here"
else:
    kind = "an AI assistant that answers each person by name"
st.markdown(
    f"""
Everyone who opens the chat page picks a nickname and joins **one shared conversation** per room with
**{name}**, {kind}. It is a Python and Streamlit port of OpenAI's multi-user sample for the (now
retired) Assistants API.

**How a message travels.** Posting a message adds it to the room, where every open page shows it, and
queues it for the assistant. The room's reply worker, a background thread owned by the room and not by
any browser tab, takes queued messages in order (messages that arrive while it is busy go together into
the next turn), asks the assistant for a reply and writes the reply into the room as it streams. Every
page draws from the room's memory: refreshing a page never calls the model.
"""
)
st.header("Assistant")
st.markdown(f"{escape_markdown(settings.assistant_name)} · {hub.assistant.label}")
st.header("Settings in effect")
st.caption(
    "For the whole app, every room alike. They are read once, when the app starts: changing one takes a "
    "restart (**Reboot app** on Streamlit Community Cloud)."
)
shown = settings.shown()  # keys hidden, addresses without passwords or tokens: anyone may read this page
st.table({"setting": list(shown), "value": list(shown.values())})
mentions.follow_mentions(hub, membership.participant_token())  # mentions in the rooms they are in
