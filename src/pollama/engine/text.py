"""Token pieces → text a client may see: whole UTF-8 characters only, stop strings never leaked.

A token can end in the middle of a multi-byte character, and a stop string can span several
tokens. `TextStream` holds back the incomplete bytes and any tail of the text that could still
grow into a stop string, and releases them as soon as they can no longer be either.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence

_utf8_decode = codecs.utf_8_decode


class TextStream:
    """Incremental detokenizer with stop-string matching for one generation."""

    __slots__ = ("_held", "_partial", "_stops", "matched", "stopped")

    def __init__(self, stops: Sequence[str] = ()) -> None:
        self._partial = b""  # the start of a character whose other bytes have not come yet
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False
        self.matched: str | None = None  # the stop string that ended the text

    def push(self, piece: bytes) -> str:
        """Feed one token's bytes; return the text that is now safe to emit.

        When a stop string completes, `stopped` becomes true and the text before it is returned.
        """
        if self._partial:
            piece = self._partial + piece
        text, used = _utf8_decode(piece, "replace", False)  # leaves an incomplete tail unread
        if used != len(piece):
            self._partial = piece[used:]
        elif self._partial:
            self._partial = b""
        if not self._stops:
            return text
        text = self._held + text
        cut = -1
        for stop in self._stops:
            i = text.find(stop)
            if i >= 0 and (cut < 0 or i < cut):
                cut, self.matched = i, stop
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return text[:cut]
        keep = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(text)), keep, -1):
                if text.endswith(stop[:k]):
                    keep = k
                    break
        if keep:
            self._held = text[-keep:]
            return text[:-keep]
        self._held = ""
        return text

    def flush(self) -> str:
        """The held-back text at the end of generation (an incomplete character is dropped)."""
        held, self._held = self._held, ""
        return held
