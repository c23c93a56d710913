"""The web side: Streamlit glue, one module per part of the page a person sees.

- `messages.py`: how a message looks (a chat bubble, its files, the reply being written)
- `files.py`: how an attached file (or a drawn picture) looks in a message
- `actions.py`: what a person can do to a message (react, reply, delete their own)
- `conversation.py`: the message list on the chat page; `reveal.py`: how fast a reply's words appear;
  `catch_up_box.py`: "Catch me up" and the private summary; `window.py`: which messages a page holds
  (the latest page, more on demand, and a bound on a page left open)
- `search.py`: *Search this room* in the sidebar, the messages found, and choosing one
- `status_line.py`: whom the assistant is replying to, who waits, Stop
- `sidebar.py`: who is here, the assistant and the reply policy, the transcript, Leave
- `notes.py`: "Room notes" (folded on the chat page, open with a form per item on This room)
- `header.py`: the top of a room's pages (invite link, instructions line, which assistant answers)
- `join_form.py`: pick a nickname; `membership.py`: who this browser is, coming back, leaving
- `chat_box.py`: the box to write in, and why a message was refused
- `routing.py`: the menu between the pages, and which room a page shows
- `live.py`: the live loop that hands the room's changes to the parts above
- `mentions.py`: mentions in the person's other rooms (a notice each) and the unread count in the tab's title
- `session.py`: every `st.session_state` key, named and documented once
- `resources.py`: what every session of the process shares (settings, the hub)
"""
