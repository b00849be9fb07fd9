"""The chat's message input."""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea

from ..attachments import dropped_path


class ChatInput(TextArea):
    """Enter sends; ctrl+j (or shift+enter where the terminal reports it) inserts a newline.

    Keys are applied in the order they arrive, also in a burst (a paste ending in a newline, a
    fast typist, `tmux send-keys`): the send key is an ordinary binding, acted on when the key
    reaches it after every key typed before it, never a priority binding (which the app runs
    as the key arrives, ahead of the characters still queued for this input)."""

    BINDINGS = [
        Binding("enter", "submit", "send", show=False, id="send"),
        Binding("ctrl+j,shift+enter", "newline", "newline", show=False, id="newline"),
    ]

    @dataclass
    class Submitted(Message):
        text: str

    @dataclass
    class ImageDropped(Message):
        """A file dropped on the terminal (pasted as its path) that is an image: attach it."""

        path: str

    def _on_paste(self, event: events.Paste) -> None:
        # As with keys: TextArea's own paste handler runs after this one, unless prevented.
        if dropped_path(event.text) is not None:
            event.prevent_default()  # the path is not typed into the message
            event.stop()  # nor handed on by the app to the focused input again
            self.post_message(self.ImageDropped(event.text))

    def _on_key(self, event: events.Key) -> None:
        # Textual runs TextArea's own key handler after this one, and it inserts Enter; a key
        # bound here (send, as the keymap has it) skips it and bubbles on to its binding.
        active = self.screen.active_bindings.get(event.key)
        if active is not None and active.node is self:
            event.prevent_default()

    def action_submit(self) -> None:
        self.post_message(self.Submitted(self.text))

    def action_newline(self) -> None:
        self.insert("\n")
