"""The assistant's function tools: every call gets a JSON answer, even an unknown or broken one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared import tools
from shared.assistant import Turn
from shared.tools import TOOL_SCHEMAS, TOOLS, call_tool

TUESDAY_AFTERNOON = datetime(2024, 3, 5, 14, 7, 30, tzinfo=UTC)


def turn_at(now: datetime = TUESDAY_AFTERNOON, present=("Alice", "Bob")) -> Turn:
    return Turn(room="lobby", messages=(), history=(), present=present, now=now)


@pytest.mark.promise_tools
def test_unknown_tool_answers_no_function_found():
    answer = call_tool("order_pizza", "{}", turn_at())

    assert json.loads(answer) == {"status": "error", "message": "No function found"}
    assert answer == '{"status": "error", "message": "No function found"}'


@pytest.mark.promise_tools
def test_tool_that_raises_answers_with_an_error_instead_of_raising(monkeypatch):
    def broken(turn: Turn) -> dict:
        raise RuntimeError("the clock fell off the wall")

    monkeypatch.setitem(TOOLS, "get_current_time", (broken, "Get today's date and the current time."))

    answer = json.loads(call_tool("get_current_time", "{}", turn_at()))

    assert answer == {"status": "error", "message": "get_current_time failed: the clock fell off the wall"}


@pytest.mark.promise_tools
def test_arguments_that_are_not_json_get_an_error_answer():
    answer = json.loads(call_tool("get_current_time", "{not json", turn_at()))

    assert answer["status"] == "error"
    assert answer["message"].startswith("get_current_time failed:")


@pytest.mark.parametrize("arguments", ["", "{}", None])
def test_empty_arguments_are_fine(arguments):
    assert "iso" in json.loads(call_tool("get_current_time", arguments, turn_at()))


def test_current_time_is_the_turns_time():
    answer = json.loads(call_tool("get_current_time", "{}", turn_at()))

    assert answer == {
        "iso": "2024-03-05T14:07:30+00:00",
        "spoken": "Tuesday, 5 March 2024, 14:07 UTC",
        "timezone": "UTC",
    }


def test_current_time_keeps_the_turns_time_zone():
    paris = timezone(timedelta(hours=1), "CET")

    answer = json.loads(call_tool("get_current_time", "{}", turn_at(TUESDAY_AFTERNOON.astimezone(paris))))

    assert answer["iso"] == "2024-03-05T15:07:30+01:00"
    assert answer["spoken"] == "Tuesday, 5 March 2024, 15:07 CET"
    assert answer["timezone"] == "CET"


def test_people_in_the_room_are_the_turns_people():
    answer = json.loads(call_tool("get_people_in_room", "{}", turn_at(present=("Alice", "Bob", "Carol"))))

    assert answer == {"room": "lobby", "people": ["Alice", "Bob", "Carol"], "count": 3}


def test_empty_room_has_nobody_in_it():
    answer = json.loads(call_tool("get_people_in_room", "{}", turn_at(present=())))

    assert answer == {"room": "lobby", "people": [], "count": 0}


def test_every_tool_has_a_strict_schema_without_parameters():
    assert [schema["name"] for schema in TOOL_SCHEMAS] == list(TOOLS)
    for schema in TOOL_SCHEMAS:
        assert schema["type"] == "function"
        assert schema["strict"] is True
        assert schema["description"]
        assert schema["parameters"] == {"type": "object", "properties": {}, "additionalProperties": False}


def test_spoken_time_is_what_the_offline_assistant_says():
    assert tools.spoken_time(turn_at()) == "Tuesday, 5 March 2024, 14:07 UTC"
