"""Several candidates of one request side by side."""

from __future__ import annotations

import math
from typing import List, Mapping, Optional, Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from ..session import mean_log_prob
from .stream_text import StreamText


class CandidatesView(Horizontal):
    """Several completions side by side, with their mean log-prob; the chosen one is marked."""

    def __init__(self, count: int, **kwargs):
        super().__init__(classes="candidates", **kwargs)
        self.texts: List[str] = [""] * count
        self.scores: List[Optional[float]] = [None] * count
        self.chosen = 0
        self._results = False  # set_results came: the texts are final

    def compose(self) -> ComposeResult:
        for i in range(len(self.texts)):
            with VerticalScroll(classes="candidate", id=f"candidate-{i}"):
                yield Static("", classes="candidate-title", id=f"candidate-title-{i}")
                yield StreamText(classes="candidate-text", id=f"candidate-text-{i}")

    def on_mount(self) -> None:
        if self._results:  # they came before the view was mounted
            self._show_results()
        else:
            self.show()

    def append(self, index: int, text: str) -> None:
        self.texts[index] += text
        self.query_one(f"#candidate-text-{index}", StreamText).append(text)

    def finish(self) -> None:
        """The generation ended without results (stopped or rejected): the texts as they got."""
        for stream in self.query(StreamText):
            stream.finish()

    def set_results(self, completions: Sequence[Mapping], chosen: int) -> None:
        self.texts = [c.get("completion", "") for c in completions]
        self.scores = [mean_log_prob(c.get("log_probs"), c.get("completion_tokens")) for c in completions]
        self.chosen = chosen
        self._results = True
        # A deferred call can come before the view is mounted (on_mount shows them then) or after
        # it was removed (the session was shown anew): nothing to show in either case.
        if self.is_mounted and self.is_attached:
            self._show_results()

    def _show_results(self) -> None:
        for i, text in enumerate(self.texts):
            self.query_one(f"#candidate-text-{i}", StreamText).finish(text)
        self.show()

    def show(self) -> None:
        for i in range(len(self.texts)):
            score = self.scores[i]
            mark = "✓ chosen" if i == self.chosen else ""
            detail = "" if score is None else f"mean log-prob {score:.2f} (p≈{math.exp(score):.2f})"
            self.query_one(f"#candidate-title-{i}", Static).update(f"#{i + 1} {detail} {mark}".strip())
            self.query_one(f"#candidate-{i}").set_class(i == self.chosen, "chosen")
