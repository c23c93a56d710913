"""The shared chat room's engine: rooms, participants, the reply worker and the assistants.

Plain Python, importable and testable without Streamlit; only `ui.py` imports streamlit.
"""
