"""The function tools the assistant may call, as JSON schemas plus the code that answers them.

Every call gets an answer, an unknown one included, so a conversation is never left waiting.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared.messages import Turn

log = logging.getLogger(__name__)
TOOL_TIMEOUT_SECONDS = 5.0
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tool")


def current_time(turn: Turn) -> dict[str, Any]:
    return {
        "iso": turn.now.isoformat(timespec="seconds"),
        "spoken": spoken_time(turn),
        "timezone": turn.now.tzname() or "UTC",
    }


def who_is_here(turn: Turn) -> dict[str, Any]:
    return {"room": turn.room, "people": list(turn.present), "count": len(turn.present)}


def spoken_time(turn: Turn) -> str:
    now = turn.now
    return f"{now:%A}, {now.day} {now:%B %Y}, {now:%H:%M} {now.tzname() or 'UTC'}"


TOOLS: dict[str, tuple[Callable[[Turn], dict[str, Any]], str]] = {
    "get_current_time": (current_time, "Get today's date and the current time."),
    "get_people_in_room": (who_is_here, "List the nicknames of the people in this chat room now."),
}

# The Responses API's function tool format.
TOOL_SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": name,
        "description": description,
        "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
        "strict": True,
    }
    for name, (_, description) in TOOLS.items()
]


def call_tool(name: str, arguments: str, turn: Turn) -> str:
    """Run one tool call and return its output as JSON text, an error object if it fails or hangs."""
    timeout = TOOL_TIMEOUT_SECONDS
    entry = TOOLS.get(name)
    if entry is None:
        return json.dumps({"status": "error", "message": "No function found"})
    try:
        json.loads(arguments or "{}")
        # A pool thread bounds a tool that hangs: the reply goes on without it.
        return json.dumps(_pool.submit(entry[0], turn).result(timeout=timeout))
    except TimeoutError:
        log.warning("tool %s did not answer within %g s", name, timeout)
        return json.dumps({"status": "error", "message": f"{name} did not answer within {timeout:g} seconds"})
    except Exception as error:  # a tool must answer, even when it breaks
        log.warning("tool %s failed: %s", name, error)
        return json.dumps({"status": "error", "message": f"{name} failed: {error}"})
