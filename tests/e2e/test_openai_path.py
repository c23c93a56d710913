"""The OpenAI path end to end: `streamlit run app.py` talks to the test OpenAI server over real HTTP.

Two Chromium pages see a streamed reply, a failure is explained to both, the key never reaches a
browser, and stopping the server deletes the conversation.
"""

from __future__ import annotations

import contextlib
import signal

import pytest

from tests.e2e.conftest import ARTIFACTS, DEADLINE_SECONDS, wait_until
from tests.e2e.test_two_people import bubble_texts, join, reply_text, send, turn_over
from tests.openai_server import API_KEY, Refuse

pytestmark = pytest.mark.e2e


def watch_everything_sent_to(page) -> list[str]:
    """Every websocket frame and HTTP response body the page receives, as text, to search for secrets."""
    seen: list[str] = []

    def on_websocket(ws):
        ws.on(
            "framereceived",
            lambda frame: seen.append(frame if isinstance(frame, str) else frame.decode("latin-1")),
        )

    def on_response(response):
        with contextlib.suppress(Exception):  # redirects and aborted requests have no body
            seen.append(response.body().decode("latin-1"))

    page.on("websocket", on_websocket)
    page.on("response", on_response)
    return seen


@pytest.mark.promise_api_key
def test_a_streamed_openai_reply_reaches_both_pages_and_the_key_never_does(
    app_server, new_page, openai_server
):
    openai_server.delta_delay = 0.08
    server = app_server(
        OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=openai_server.base_url, OPENAI_MODEL="test-model"
    )
    alice, bob = new_page(), new_page()
    received = watch_everything_sent_to(alice)
    bob_received = watch_everything_sent_to(bob)
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")
    assert "test-model on a compatible server" in alice.locator('[data-testid="stSidebar"]').inner_text()

    send(alice, "Hello from the browser")
    for name, page in (("Alice", alice), ("Bob", bob)):
        wait_until(
            lambda page=page: "writing…" in reply_text(page),
            DEADLINE_SECONDS,
            f"{name} to see the reply stream",
        )
    for page in (alice, bob):
        wait_until(
            lambda page=page: "You said: Hello from the browser" in reply_text(page),
            DEADLINE_SECONDS,
            "the reply",
        )
    bob.screenshot(path=str(ARTIFACTS / "openai-reply-bob.png"))

    request = openai_server.response_requests()[-1]
    assert request["stream"] is True and request["model"] == "test-model"
    assert [item["content"] for item in request["input"]] == ['[Alice] "Hello from the browser"']
    assert "Alice" in request["instructions"]

    page_text = alice.content() + bob.content()
    frames = "".join(received + bob_received)
    assert frames, "the pages' traffic was captured"
    assert API_KEY not in page_text and API_KEY not in frames
    assert API_KEY[-12:] not in frames  # not even part of it
    assert API_KEY not in server.log()


@pytest.mark.promise_model_failures
def test_a_refused_key_is_explained_in_both_pages_and_the_room_goes_on(app_server, new_page, openai_server):
    server = app_server(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=openai_server.base_url)
    alice, bob = new_page(), new_page()
    join(alice, server.url, "Alice")
    join(bob, server.url, "Bob")
    openai_server.script(Refuse(401, "invalid_api_key", f"Incorrect API key provided: {API_KEY}"))
    send(alice, "Is anyone there?")
    for page in (alice, bob):
        wait_until(
            lambda page=page: "The OpenAI API key was refused (401)" in page.locator("body").inner_text(),
            DEADLINE_SECONDS,
            "the failure to be explained",
        )
    alice.screenshot(path=str(ARTIFACTS / "openai-refused.png"))
    assert API_KEY not in alice.content()

    wait_until(lambda: turn_over(alice), DEADLINE_SECONDS, "the turn to end")
    send(alice, "Trying again")
    wait_until(lambda: "You said: Trying again" in reply_text(bob), DEADLINE_SECONDS, "the next reply")
    assert sum("Is anyone there?" in t for t in bubble_texts(bob)) == 1  # nothing lost, nothing doubled


@pytest.mark.promise_worker_and_shutdown
def test_stopping_the_server_deletes_the_conversation(app_server, new_page, openai_server):
    server = app_server(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=openai_server.base_url)
    alice = new_page()
    join(alice, server.url, "Alice")
    # A room opens its conversation on its first turn, not on a join: ask, so that there is one to delete.
    send(alice, "Hello?")
    wait_until(lambda: "You said: Hello?" in reply_text(alice), DEADLINE_SECONDS, "the reply")
    (conversation,) = openai_server.conversations
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(20)
    assert [r.path for r in openai_server.sent("DELETE", "/v1/conversations/")] == [
        f"/v1/conversations/{conversation}"
    ]
    assert openai_server.conversations == {}
