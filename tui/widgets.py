"""Small widgets: the numbers bar, chat messages, candidates side by side."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from .session import Turn, mean_log_prob
from .tokens import coloured


@dataclass
class GenerationStats:
    """The numbers people ask for, of the generation in progress (or the last one)."""

    context_length: int = 0
    prompt_tokens: int = 0
    generated: int = 0
    started: float = 0.0
    first_chunk: Optional[float] = None
    finished: Optional[float] = None
    running: bool = False

    def start(self, prompt_tokens: int) -> None:
        self.prompt_tokens, self.generated = prompt_tokens, 0
        self.started, self.first_chunk, self.finished = time.perf_counter(), None, None
        self.running = True

    def chunk(self, tokens: int) -> None:
        if self.first_chunk is None:
            self.first_chunk = time.perf_counter()
        self.generated += tokens

    def stop(self) -> None:
        self.finished = time.perf_counter()
        self.running = False

    @property
    def time_to_first_token(self) -> Optional[float]:
        return None if self.first_chunk is None else self.first_chunk - self.started

    @property
    def tokens_per_second(self) -> Optional[float]:
        if self.first_chunk is None or self.generated < 2:
            return None
        end = self.finished or time.perf_counter()
        return (self.generated - 1) / max(end - self.first_chunk, 1e-6)


def redraw(widget: Static, content, streaming: bool = False) -> bool:
    """Show new content in a Static, with as few layout passes as possible. A layout pass
    re-arranges and repaints the whole screen (the parameter panel's forty fields included): on
    a 2-core machine that is tens of milliseconds taken from the model's decode. So the widget is
    repainted alone while its content keeps its height; while `streaming`, a widget that needs
    more lines grows by STREAM_RESERVE spare lines at once, so text streamed into it takes a
    layout pass once in several lines. Returns whether the height changed."""
    widget.update(content, layout=False)
    region = widget.content_region
    if region.width <= 0:  # not laid out yet
        widget.refresh(layout=True)
        return True
    needed = widget.get_content_height(region.size, widget.app.size, region.width)
    if streaming:
        if needed <= region.height:
            return False
        widget.styles.min_height = needed + STREAM_RESERVE + widget.styles.gutter.height
    elif widget.styles.min_height is not None:
        widget.styles.min_height = None  # the stream has ended: the content's own height
    elif needed == region.height:
        return False
    widget.refresh(layout=True)
    return True


STREAM_RESERVE = 6


def gauge(used: int, total: int, width: int = 12) -> str:
    filled = 0 if total <= 0 else min(width, round(width * used / total))
    return "█" * filled + "░" * (width - filled)


class StatsBar(Static):
    """TTFT, tokens/s, prompt and generated tokens, and the context window in use."""

    def __init__(self, **kwargs):
        super().__init__("", **kwargs)
        self.stats = GenerationStats()
        self.model = ""

    def on_mount(self) -> None:
        self.set_interval(0.5, self.show)  # each redraw of the bar costs the model some decode time
        self.show()

    def show(self) -> None:
        s = self.stats
        ttft = "–" if s.time_to_first_token is None else f"{1000 * s.time_to_first_token:.0f} ms"
        rate = "–" if s.tokens_per_second is None else f"{s.tokens_per_second:.0f}"
        used = s.prompt_tokens + s.generated
        state = "generating" if s.running else "ready"
        if self.size.width >= 100:
            text = (f"{self.model}  {state}  │ TTFT {ttft} │ {rate} tok/s │ prompt {s.prompt_tokens} │ "
                    f"generated {s.generated} │ ctx {gauge(used, s.context_length)} {used}/{s.context_length}")
        else:  # 80 columns
            text = (f"{self.model} {'…' if s.running else '✓'}│TTFT {ttft}│{rate} tok/s│prompt {s.prompt_tokens}│"
                    f"gen {s.generated}│ctx {gauge(used, s.context_length, 6)} {used}/{s.context_length}")
        self.update(text, layout=False)  # one line, always


class MessageView(Static, can_focus=True):
    """One chat message; an assistant reply with log-probs is coloured by token probability."""

    def __init__(self, turn: Turn, index: int, **kwargs):
        super().__init__("", classes=f"message {turn.role}", **kwargs)
        self.turn = turn
        self.index = index

    def on_mount(self) -> None:
        self.show()

    def show(self) -> None:
        """Show the turn as it is now."""
        turn = self.turn
        header = Text("you" if turn.role == "user" else "assistant", style="bold")
        tokens, log_probs = turn.tokens(), turn.log_probs()
        # Coloured when the reply is exactly its tokens (a trailing end-of-turn token shows too).
        if turn.role == "assistant" and tokens and log_probs and "".join(tokens).startswith(turn.content):
            body = coloured(tokens, log_probs)
        else:
            body = Text(turn.content)
        score = mean_log_prob(log_probs, tokens)
        if score is not None:
            header.append(f"  mean log-prob {score:.2f}", style="dim")
        redraw(self, Text.assemble(header, "\n", body))


class LiveReply(Vertical):
    """A reply while it streams. The text written so far is a few Statics: all but the last are
    never drawn again, and the last (the tail) is frozen, up to its last line break, into a
    Static of its own once it is longer than FREEZE_CHARS. So a frame wraps and draws a bounded
    amount of text at the 500th token as at the 5th (a single Static would do the whole reply on
    every frame), and a paragraph break costs no layout pass of its own."""

    FREEZE_CHARS = 800

    def __init__(self, text: str = "", **kwargs):
        super().__init__(classes="message assistant live", **kwargs)
        self.text = ""
        self._tail: Optional[Static] = None
        self._tail_text = ""  # the text after the last frozen Static
        self._first = text

    def compose(self) -> ComposeResult:
        yield Static(Text("assistant", style="bold"))
        self._tail = Static("", classes="paragraph")
        yield self._tail

    def on_mount(self) -> None:
        self.append(self._first)

    def append(self, text: str) -> bool:
        """Add streamed text; returns whether the view grew (a layout pass happened)."""
        self.text += text
        self._tail_text += text
        frozen = len(self._tail_text) > self.FREEZE_CHARS and "\n" in self._tail_text
        if frozen:
            done, self._tail_text = self._tail_text.rsplit("\n", 1)
            self.mount(Static(done, classes="paragraph"), before=self._tail)
            self._tail.styles.min_height = None  # its spare lines start again below the new text
        return redraw(self._tail, self._tail_text, streaming=True) or frozen


class CandidatesView(Horizontal):
    """Several completions side by side, with their mean log-prob; the chosen one is marked."""

    def __init__(self, count: int, **kwargs):
        super().__init__(classes="candidates", **kwargs)
        self.texts: List[str] = [""] * count
        self.scores: List[Optional[float]] = [None] * count
        self.chosen = 0

    def compose(self) -> ComposeResult:
        for i in range(len(self.texts)):
            with VerticalScroll(classes="candidate", id=f"candidate-{i}"):
                yield Static("", classes="candidate-title", id=f"candidate-title-{i}")
                yield Static("", classes="candidate-text", id=f"candidate-text-{i}")

    def on_mount(self) -> None:
        self.show()

    def append(self, index: int, text: str) -> None:
        self.texts[index] += text
        redraw(self.query_one(f"#candidate-text-{index}", Static), self.texts[index], streaming=True)

    def set_results(self, completions: Sequence[Mapping], chosen: int) -> None:
        self.texts = [c.get("completion", "") for c in completions]
        self.scores = [mean_log_prob(c.get("log_probs"), c.get("completion_tokens")) for c in completions]
        self.chosen = chosen
        self.show()

    def show(self) -> None:
        for i, text in enumerate(self.texts):
            score = self.scores[i]
            mark = "✓ chosen" if i == self.chosen else ""
            detail = "" if score is None else f"mean log-prob {score:.2f} (p≈{math.exp(score):.2f})"
            self.query_one(f"#candidate-title-{i}", Static).update(f"#{i + 1} {detail} {mark}".strip())
            redraw(self.query_one(f"#candidate-text-{i}", Static), text)
            self.query_one(f"#candidate-{i}").set_class(i == self.chosen, "chosen")

