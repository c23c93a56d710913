"""Entry point: `streamlit run app.py`. Sets up the page and the navigation between the pages.

`app` is the server (Streamlit's `st.App`, which `streamlit run` finds here) with the middleware that
gives each browser its signed identity cookie (`shared/identity.py`) and tells it to load nothing from
anywhere but the app (`shared/page_policy.py`). Each page visit runs this file as the script
(`__main__`); the server imports it as the module `app` and only builds `app`.
"""

import asyncio
import contextlib

import streamlit as st
from starlette.middleware import Middleware

from shared.identity import BrowserCookie
from shared.page_policy import PagePolicy
from shared.web import resources
from shared.web.routing import app_navigation


@contextlib.asynccontextmanager
async def _lifespan(_app: st.App):
    yield None
    # Served this way, uvicorn ends the process by raising SIGTERM again after its graceful shutdown, so
    # `atexit` never runs: close every room's conversation here.
    await asyncio.to_thread(resources.shutdown_hub)


app = st.App("app.py", middleware=[Middleware(PagePolicy), Middleware(BrowserCookie)], lifespan=_lifespan)

if __name__ == "__main__":
    app_navigation().run()
