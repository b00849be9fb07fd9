"""Seeing the model think: tokens coloured by probability, the top alternatives of a token, and
the tokens that make a reply's text. (The widget with a cursor over them is tui.widgets.TokenView.)"""

from __future__ import annotations

import math
from typing import List, Mapping, Optional, Sequence, Tuple

from rich.text import Text

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


def shown_tokens(tokens: Optional[List[str]], content: str) -> Optional[List[str]]:
    """The tokens that make `content`, without what the reply's text leaves out (a final
    end-of-turn token); None if they do not make it."""
    if not tokens:
        return None
    kept, length = [], 0
    for token in tokens:
        if length + len(token) > len(content):
            break
        kept.append(token)
        length += len(token)
    return kept if "".join(kept) == content else None
