"""The shared chat room's engine: rooms, participants, the reply worker and the assistants.

Plain Python, importable and testable without Streamlit, except the web side, `web/`, which imports
streamlit, and `config.py` (to read secrets) and `identity.py` (to read `server.cookieSecret`)
import it lazily, inside the function that needs it.
"""
