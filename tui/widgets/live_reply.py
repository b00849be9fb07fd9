"""A chat reply while it streams."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from .stream_text import StreamText


class LiveReply(Vertical):
    """A reply while it streams: a header and the text as a StreamText, so a frame wraps and
    draws the reply's last line or two at the 500th token as at the 5th. `reserve`: spare lines
    below the text (see StreamText)."""

    def __init__(self, text: str = "", reserve: int = 0, **kwargs):
        super().__init__(classes="message assistant live", **kwargs)
        self._first = text
        self._stream = StreamText(reserve, classes="paragraph")

    def compose(self) -> ComposeResult:
        yield Static(Text("assistant", style="bold"))
        yield self._stream

    def on_mount(self) -> None:
        self.append(self._first)

    @property
    def text_bottom(self) -> int:
        """The line below the text's last one, from the top of this widget."""
        return 1 + self._stream.line_count

    def append(self, text: str) -> bool:
        """Add streamed text; returns whether the view grew (a layout pass happened)."""
        return self._stream.append(text)
