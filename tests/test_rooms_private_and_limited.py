"""Who gets into a room: private rooms open only with their invite secret; MAX_ROOMS caps open rooms."""

from __future__ import annotations

import pytest

from shared.errors import JoinRefused, RoomRefused
from shared.hub import PRIVATE_ROOM
from tests import test_hub
from tests.fakes import wait_until

# test_hub's fixtures, by name: a scripted assistant, hubs on it, and a hub whose rooms stay open 60 s.
assistant, make_hub, hub = test_hub.assistant, test_hub.make_hub, test_hub.hub


@pytest.mark.promise_private_rooms
def test_a_private_room_opens_with_its_invite_and_never_by_its_name(hub):
    plans = hub.open_room("plans", private=True)
    secret = plans.invite_secret
    assert plans.private and len(secret) >= 32

    assert hub.room("plans", secret) is plans
    for wrong in (None, "", secret[:-1], secret + "x", "é" * 10):
        with pytest.raises(RoomRefused, match="only its invite link lets you in") as refusal:
            hub.room("plans", wrong)
        assert str(refusal.value) == PRIVATE_ROOM
    with pytest.raises(RoomRefused):
        hub.join("plans", "id-bob", "Bob", "tab-bob")  # joining needs the invite too
    room, bob = hub.join("plans", "id-bob", "Bob", "tab-bob", secret)
    assert room is plans and bob.nickname == "Bob"


@pytest.mark.promise_private_rooms
def test_every_private_room_has_its_own_secret(hub):
    secrets = {hub.open_room(f"room-{i}", private=True).invite_secret for i in range(20)}
    assert len(secrets) == 20


@pytest.mark.promise_private_rooms
def test_a_private_rooms_name_cannot_be_taken_again_and_the_lobby_stays_public(hub):
    hub.open_room("plans", private=True)
    with pytest.raises(RoomRefused, match="already open"):
        hub.open_room("plans", private=False)
    with pytest.raises(RoomRefused, match="already open"):
        hub.open_room("plans", private=True)
    with pytest.raises(RoomRefused, match="open to everyone"):
        hub.open_room("lobby", private=True)


def test_opening_a_public_room_that_is_open_goes_to_it(hub):
    garden = hub.room("garden")
    assert hub.open_room("garden", private=False) is garden
    with pytest.raises(RoomRefused, match="already open"):
        hub.open_room("garden", private=True)


@pytest.mark.promise_private_rooms
def test_an_invite_to_a_private_room_that_closed_opens_nothing(make_hub):
    hub = make_hub(room_empty_grace_seconds=0)
    plans = hub.open_room("plans", private=True)
    wait_until(lambda: plans.closed, "the empty room to close")
    with pytest.raises(RoomRefused, match="has closed"):
        hub.room("plans", plans.invite_secret)
    assert not hub.room("plans").private, "the name is free again, for a public room"


@pytest.mark.promise_max_rooms
def test_max_rooms_refuses_a_new_room_with_the_limit_named_and_keeps_the_open_ones(make_hub):
    hub = make_hub(room_empty_grace_seconds=60, max_rooms=2)
    lobby, garden = hub.room("lobby"), hub.open_room("garden", private=True)
    for open_it in (lambda: hub.room("third"), lambda: hub.open_room("third", private=False)):
        with pytest.raises(RoomRefused) as refusal:
            open_it()
        assert "limit of 2 open rooms" in str(refusal.value)
    assert hub.room("lobby") is lobby and hub.room("garden", garden.invite_secret) is garden
    person = lobby.join("id-alice", "Alice", "tab")
    lobby.post(person.id, "still working")
    assert len(hub.rooms()) == 2


@pytest.mark.promise_max_rooms
def test_a_room_that_closes_frees_its_place(make_hub):
    hub = make_hub(room_empty_grace_seconds=0.05, max_rooms=1)
    lobby = hub.room("lobby")
    with pytest.raises(RoomRefused):
        hub.room("garden")
    wait_until(lambda: lobby.closed, "the empty lobby to close")
    assert hub.room("garden").name == "garden"


@pytest.mark.promise_max_rooms
def test_looking_for_a_room_opens_nothing_and_neither_does_a_refused_nickname(make_hub):
    hub = make_hub(room_empty_grace_seconds=60, max_rooms=1)
    assert [hub.find(f"peek-{n}") for n in range(5)] == [None] * 5
    with pytest.raises(JoinRefused):
        hub.join("garden", "id-ann", "  ", "tab-ann")
    assert hub.store.room_names() == [] and hub.rooms() == []
    garden, _ = hub.join("garden", "id-ann", "Ann", "tab-ann")  # the one place goes to the first join
    assert hub.find("garden") is garden and hub.store.room_names() == ["garden"]
