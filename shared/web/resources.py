"""What every session of this process shares: the settings, the hub (every room), the catch-up writer;
and the page that waits while the rooms' store cannot be reached."""

from __future__ import annotations

import time

import streamlit as st

from shared.catch_up import CatchUps
from shared.config import Settings, SettingsError, load_settings
from shared.hub import Hub
from shared.store import StoreUnavailable
from shared.web.session import waits

# Good settings are kept for the process's life (`_settings`): a change takes a restart, not a reload.
RESTART_HINT = (
    "Fix them in the environment, `.env` or `.streamlit/secrets.toml`, then restart the app: stop "
    "`streamlit run` and start it again, or on Streamlit Community Cloud choose **Reboot app** in the app's "
    "⋮ menu."
)
STORE_RETRY_SECONDS = 1.0


@st.cache_resource(show_spinner=False)
def _settings() -> Settings:
    return load_settings()


def settings_or_stop() -> Settings:
    """The settings, or a page that says what is wrong with them (one sentence per variable)."""
    try:
        return _settings()
    except SettingsError as error:
        st.error(
            "The app cannot start because of its settings:\n\n" + "\n".join(f"- {p}" for p in error.problems)
        )
        st.caption(RESTART_HINT)
        st.stop()


@st.cache_resource(show_spinner=False, on_release=Hub.shutdown)
def get_hub() -> Hub:
    return Hub(_settings())


@st.cache_resource(show_spinner=False)
def get_catch_ups() -> CatchUps:
    return CatchUps()


def shutdown_hub() -> None:
    """Close every room's conversation as the server stops (`app.py`'s lifespan); nothing if no hub."""
    get_hub.clear()  # its `on_release` is `Hub.shutdown`


def wait_for_the_store(hub: Hub, trouble: StoreUnavailable) -> None:
    """Say the rooms cannot be reached, and draw the page afresh once they can."""
    st.warning(str(trouble), icon=":material/cloud_off:")
    for _ in waits(lambda: time.sleep(STORE_RETRY_SECONDS)):
        try:
            hub.store.ping()
        except StoreUnavailable:
            continue
        st.rerun()
