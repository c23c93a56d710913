"""The errors a person can do something about, each carrying a sentence to show them.

Raised where the problem is found; the page shows `str(error)` as it is.
"""


class ChatError(Exception):
    """Base class: the message is written for the person using the app."""


class JoinRefused(ChatError):
    """The nickname or the room does not allow this join."""


class RoomClosed(JoinRefused):
    """The room closed (it stayed empty) just as someone joined: the hub gives them a fresh one."""


class RoomRefused(ChatError):
    """The room cannot be opened: private without its invite, closed, or past `MAX_ROOMS`."""


class MessageRefused(ChatError):
    """The message was not posted (empty, too long); nothing was added to the room."""


class AssistantError(ChatError):
    """The assistant could not open a conversation or finish a reply.

    `delivered` is False when the assistant never received the turn's messages (the request was
    refused or never arrived): the room then sends them again with the next turn.
    """

    def __init__(self, message: str, *, delivered: bool = True):
        super().__init__(message)
        self.delivered = delivered


class ConversationLost(AssistantError):
    """The server no longer knows the room's conversation (expired or deleted): open a new one."""

    def __init__(self, message: str):
        super().__init__(message, delivered=False)


class ReplyNotWritten(AssistantError):
    """The reply's next words could not be written into the room (its store could not be reached): the
    turn ends cut short, as far as the room got it, never as complete."""

    def __init__(self) -> None:
        super().__init__("its words could not be written into the room (the rooms' store was unreachable).")


class AttachmentRefused(MessageRefused):
    """A file was not attached (too big, not an accepted type, a picture that does not open)."""


class CatchUpRefused(ChatError):
    """A catch-up summary was not made (one is already being written, or the person asks too often)."""


class HostOnly(ChatError):
    """Only the room's host may do this (remove a person, lock the room); nothing changed."""


class JoinRemoved(JoinRefused):
    """The host removed this browser's person from the room: it may not join again while the room is open."""


class BudgetSpent(AssistantError):
    """A daily token budget (the room's or the app's) is spent: no request was made. The sentence says
    which budget, and when the assistant answers again."""

    def __init__(self, message: str, *, app: bool, delivered: bool = False):
        super().__init__(message, delivered=delivered)
        self.app = app


class NoteRefused(ChatError):
    """A change to the room's notes was not made (too long, empty, a full list, an item that is gone)."""
