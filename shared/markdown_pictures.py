"""Markdown that people or the model wrote, made safe and faithful to show: its pictures as links (no
viewer's browser fetches them) and, in people's messages, each line break kept as they typed it."""

from __future__ import annotations

import re

# `![` that starts a picture: the `!` is not itself escaped (an even number of backslashes before it).
_PICTURE = re.compile(r"(?<!\\)((?:\\\\)*)!\[")
# A line break inside a paragraph, between two lines that hold something (a blank line is a new paragraph).
_LINE_BREAK = re.compile(r"(?<=[^\n])\n(?=[^\n])")
# Code, where Markdown draws no picture: a fenced block (to its closing fence, or the end), or a code span
# (a run of backticks not escaped, to the next run of the same length: CommonMark's rule).
_CODE = re.compile(
    r"^ {0,3}(?P<fence>`{3,}|~{3,})[^\n]*\n.*?(?:^ {0,3}(?P=fence)[ \t]*$|\Z)"
    r"|(?<![\\`])(?P<ticks>`+)(?!`).+?(?<!`)(?P=ticks)(?!`)",
    re.MULTILINE | re.DOTALL,
)


def pictures_as_links(text: str) -> str:
    """Markdown that people or the model wrote, with every picture shown as a link to it, never loaded.

    Streamlit draws `![alt](address)` as an image that every viewer's browser fetches from that address
    (its front end drops only `javascript:` addresses), telling whoever runs it who reads the room, and
    when. Every form of a Markdown picture starts with `![` (inline, `![alt][ref]` with its `[ref]: address`
    elsewhere, `![ref]`); escaping that `!` leaves a link. HTML such as `<img>` is shown as text by
    Streamlit already. Code is left as it is (a backslash would show there); should this reading of
    where code is ever differ from the page's, the Content-Security-Policy still refuses the picture.
    """
    shown, start = [], 0
    for code in _CODE.finditer(text):
        shown += [_PICTURE.sub(r"\1\\![", text[start : code.start()]), code.group()]
        start = code.end()
    return "".join([*shown, _PICTURE.sub(r"\1\\![", text[start:])])


def as_typed(text: str) -> str:
    """A person's message: pictures as links (`pictures_as_links`), and every line break they typed
    (Shift+Enter) drawn as one. Markdown joins a single line break into a space, so "todo @Bob …" and
    "Can we …? ?open" on two lines would show as one line, though the notes read them as two. A break
    inside code is left alone: code keeps its lines already."""
    code = [match.span() for match in _CODE.finditer(text)]

    def kept(match: re.Match[str]) -> str:
        return match.group() if any(a <= match.start() < b for a, b in code) else "  \n"

    return pictures_as_links(_LINE_BREAK.sub(kept, text))


def without_code(text: str) -> str:
    """`text` with its code (fenced blocks, code spans) blanked out: what is quoted as code is not said,
    e.g. an @name in it mentions nobody."""
    return _CODE.sub(lambda code: " " * len(code.group()), text)
