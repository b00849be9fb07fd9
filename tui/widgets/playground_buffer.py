"""The playground's text to complete."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import TextArea


class PlaygroundBuffer(TextArea):
    """The text to complete. F5-F7 are the playground's keys here (TextArea's own F6 and F7
    select text). They are ordinary bindings, not priority ones, so they act after every key
    typed before them has reached the buffer."""

    BINDINGS = [
        Binding("f5", "app.view('generate')", "generate", show=False, id="generate"),
        Binding("f6", "app.view('accept')", "accept", show=False, id="accept"),
        Binding("f7", "app.view('reject')", "reject", show=False, id="reject"),
    ]
