"""A completion's tokens coloured by probability, with a cursor over them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from ..tokens import coloured


class TokenView(Widget, can_focus=True):
    """Coloured tokens with a cursor (left/right). Posts Moved when the cursor moves (the token
    inspector then lists that token's alternatives)."""

    BINDINGS = [
        Binding("left", "move(-1)", "previous token", show=False, id="token_previous"),
        Binding("right", "move(1)", "next token", show=False, id="token_next"),
        Binding("home", "move_to(0)", "first token", show=False, id="token_first"),
        Binding("end", "move_to(-1)", "last token", show=False, id="token_last"),
    ]

    cursor = reactive(0)

    @dataclass
    class Moved(Message):
        view: "TokenView"
        index: int

    def __init__(self, tokens: Sequence[str] = (), log_probs: Optional[Sequence[Mapping[str, float]]] = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.tokens = list(tokens)
        self.log_probs = list(log_probs or [])

    def render(self) -> Text:
        if not self.tokens:
            return Text("(no tokens)", style="dim")
        return coloured(self.tokens, self.log_probs, self.cursor if self.has_focus else -1)

    def watch_cursor(self, value: int) -> None:
        self.refresh()
        self.post_message(self.Moved(self, value))

    def on_focus(self) -> None:
        self.refresh()
        self.post_message(self.Moved(self, self.cursor))

    def on_blur(self) -> None:
        self.refresh()

    def action_move(self, step: int) -> None:
        if self.tokens:
            self.cursor = max(0, min(len(self.tokens) - 1, self.cursor + step))

    def action_move_to(self, index: int) -> None:
        if self.tokens:
            self.cursor = index % len(self.tokens)

    def entry(self, index: Optional[int] = None) -> Mapping[str, float]:
        index = self.cursor if index is None else index
        return self.log_probs[index] if index < len(self.log_probs) else {}
