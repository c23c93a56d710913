"""The model the app under test talks to: the project's OpenAI-protocol test server, with bench replies.

Owns what a measured reply looks like and when each one streamed. A reply starts with the token of the
message it answers (so every page can tell which reply it is from its first word) and is padded to
`reply_words` words, so that at 50 ms a word it streams long enough for others to write meanwhile.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from tests.openai_server import OpenAIServer, _message, default_reply

TOKEN = re.compile(r"\bbm\d{6}\b")
FILLER = ["and", "the", "room", "keeps", "listening", "while", "the", "words", "arrive", "one", "by", "one"]


class BenchModel(OpenAIServer):
    """`OpenAIServer` whose default replies can be padded, and which notes when each response streamed."""

    def __init__(self, api_key: str) -> None:
        super().__init__(api_key=api_key)
        self.reply_words = 0  # 0: the test server's own short reply (the history needs no length)
        self.streamed: list[tuple[float, float]] = []  # (began, ended) per response, time.monotonic()
        self._streamed_lock = threading.Lock()

    def _plan(self, items: list[dict[str, Any]], behaviour: Any) -> list[dict[str, Any]]:
        planned = super()._plan(items, behaviour)
        if behaviour is not None or not self.reply_words:
            return planned
        text = default_reply(items)
        tokens = TOKEN.findall(text)
        words = ([tokens[-1]] if tokens else []) + text.split()
        words += [FILLER[i % len(FILLER)] for i in range(max(0, self.reply_words - len(words)))]
        return [_message(planned[0]["id"], " ".join(words))]

    def _run(self, exchange, body, conversation, items, behaviour) -> None:
        began = time.monotonic()
        try:
            super()._run(exchange, body, conversation, items, behaviour)
        finally:
            with self._streamed_lock:
                self.streamed.append((began, time.monotonic()))
