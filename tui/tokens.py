"""Seeing the model think: tokens coloured by probability, a cursor over them, and the top
alternatives of the token under the cursor."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Tuple

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

# Probability of the chosen token -> style: green when the model was sure, red when it was not.
_SCALE = [(0.9, "green"), (0.6, "chartreuse3"), (0.3, "yellow"), (0.1, "dark_orange"), (0.0, "red")]


def probability_style(logprob: Optional[float]) -> str:
    if logprob is None:
        return "dim"
    p = math.exp(logprob)
    return next(style for threshold, style in _SCALE if p >= threshold)


def coloured(tokens: Sequence[str], log_probs: Optional[Sequence[Mapping[str, float]]], cursor: int = -1) -> Text:
    """The tokens as one text, each coloured by the probability of the chosen token."""
    text = Text()
    for i, token in enumerate(tokens):
        entry = log_probs[i] if log_probs and i < len(log_probs) else {}
        style = probability_style(entry.get(token))
        if i == cursor:
            style += " reverse"
        text.append(token.replace("\n", "⏎\n") if i == cursor else token, style=style)
    return text


def alternatives(token: str, entry: Mapping[str, float]) -> List[Tuple[str, float]]:
    """(token, probability) of the chosen token and its alternatives, most likely first."""
    ranked = sorted(entry.items(), key=lambda kv: -kv[1])
    return [(t, math.exp(lp)) for t, lp in ranked]


class TokenView(Widget, can_focus=True):
    """Coloured tokens with a cursor (left/right). Posts Moved when the cursor moves and Branch
    when the user asks to regenerate from the token under the cursor."""

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
