"""Small widgets: the numbers bar, chat messages, candidates side by side."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Tuple, Union

from rich._wrap import divide_line  # Text.wrap's own line breaking (rich is pinned for it)
from rich.cells import cell_len
from rich.control import strip_control_codes
from rich.segment import Segment
from rich.style import Style
from rich.console import Group
from rich.markdown import Markdown
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget
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

    streamed: bool = True  # best_of > 1 comes back whole: no time to first token

    def start(self, prompt_tokens: int, streamed: bool = True) -> None:
        self.prompt_tokens, self.generated = prompt_tokens, 0
        self.started, self.first_chunk, self.finished = time.perf_counter(), None, None
        self.running, self.streamed = True, streamed

    def chunk(self, tokens: int) -> None:
        if self.first_chunk is None:
            self.first_chunk = time.perf_counter()
        self.generated += tokens

    def stop(self) -> None:
        self.finished = time.perf_counter()
        self.running = False

    @property
    def time_to_first_token(self) -> Optional[float]:
        return None if self.first_chunk is None or not self.streamed else self.first_chunk - self.started

    @property
    def tokens_per_second(self) -> Optional[float]:
        end = self.finished or time.perf_counter()
        if not self.streamed:  # every candidate's tokens, over the whole time
            return self.generated / max(end - self.started, 1e-6) if self.finished and self.generated else None
        if self.first_chunk is None or self.generated < 2:
            return None
        return (self.generated - 1) / max(end - self.first_chunk, 1e-6)


def redraw(widget: Static, content) -> bool:
    """Show new content in a Static, with a layout pass only where its height changes. A layout
    pass re-arranges and repaints the whole screen (the parameter panel's forty fields
    included): on a 2-core machine that is tens of milliseconds taken from the model's decode.
    Returns whether the height changed."""
    widget.update(content, layout=False)
    region = widget.content_region
    if region.width <= 0:  # not laid out yet
        widget.refresh(layout=True)
        return True
    if widget.get_content_height(region.size, widget.app.size, region.width) == region.height:
        return False
    widget.refresh(layout=True)
    return True


STREAM_RESERVE = 6


def follow(scroll: VerticalScroll, widget: Widget, line: int) -> None:
    """Keep `line` of `widget` (a child of `scroll`, with spare lines below it) in view as text
    streams in. The view moves a third of its height at a time, not a line at a time: each move
    redraws all of it (and keys typed meanwhile wait for that)."""
    bottom = widget.virtual_region.y + line
    height = scroll.scrollable_content_region.height
    if bottom > scroll.scroll_y + height:
        scroll.scroll_to(y=bottom + max(STREAM_RESERVE, height // 3) - height, animate=False)


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
        model = os.path.basename(self.model) or self.model  # a model given as a path: its file name
        if self.size.width >= 100:
            text = (f"{model}  {state}  │ TTFT {ttft} │ {rate} tok/s │ prompt {s.prompt_tokens} │ "
                    f"generated {s.generated} │ ctx {gauge(used, s.context_length)} {used}/{s.context_length}")
        else:  # 80 columns
            text = (f"{model} {'…' if s.running else '✓'}│TTFT {ttft}│{rate} tok/s│prompt {s.prompt_tokens}│"
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
        """Show the turn as it is now: an assistant reply as Markdown, or as its raw text
        (coloured by token probability where it has log-probs), as the app shows replies."""
        turn = self.turn
        header = Text("you" if turn.role == "user" else "assistant", style="bold")
        tokens = shown_tokens(turn.tokens(), turn.content)
        log_probs = turn.log_probs()
        score = mean_log_prob(log_probs, turn.tokens())
        if score is not None:
            header.append(f"  mean log-prob {score:.2f}", style="dim")
        if turn.ending:
            header.append(f"  ({turn.ending})", style="italic yellow")
        request = turn.request or {}
        if request.get("seed") is not None:
            header.append(f"  seed {request['seed']}", style="dim")  # the reply replays with it
        if turn.role == "assistant" and getattr(self.app, "markdown", False):
            body = Markdown(turn.content)
        elif turn.role == "assistant" and tokens is not None and log_probs:
            body = coloured(tokens, log_probs)
        else:
            body = Text(turn.content)
        redraw(self, Group(header, body))


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


class StreamText(Widget):
    """Text that only grows (a reply while it streams), drawn a line at a time. Paragraphs wrap
    on their own, so text added at the end re-wraps only the last paragraph: the lines before it
    are wrapped once and kept, and a frame repaints just the lines that changed (a Static
    re-wraps and repaints all of its text on every update). Lines break where rich's Text.wrap
    breaks them, as the finished reply shows them. When it needs more lines the widget takes
    `reserve` spare ones at once, so the screen's layout is redone once in that many lines; a
    layout pass re-arranges every widget on the screen (twice, as sizes settle). `finish()`
    ends the stream: the widget is then as tall as its text."""

    DEFAULT_CSS = "StreamText { height: auto; }"

    def __init__(self, reserve: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.reserve = max(reserve, STREAM_RESERVE)
        self.streaming = True
        self._clear()
        self._rows = 1 + self.reserve  # the lines the widget takes (spare ones included)

    def _clear(self) -> None:
        self.text = ""  # as shown: control codes dropped, tabs as spaces
        self._styles: List[Tuple[int, Optional[Style]]] = [(0, None)]  # (from offset, style) in text
        self._lines: List[Tuple[int, str]] = []  # (offset, line) of the paragraphs before the last
        self._tail: List[Tuple[int, str]] = [(0, "")]  # the last paragraph's, re-wrapped as it grows
        self._open = 0  # where the last paragraph starts in `text`
        self._width = 0  # the width the lines are wrapped to

    @property
    def lines(self) -> List[str]:
        return [line for _, line in self._lines + self._tail]

    @property
    def line_count(self) -> int:
        return len(self._lines) + len(self._tail)

    def append(self, text: str, style: Union[Style, str, None] = "") -> bool:
        """Add text at the end, in `style` (a rich style; by default the style of the text before
        it). Returns whether the widget needed more lines (a layout pass)."""
        if style != "":
            self._styles.append((len(self.text), Style.parse(style) if isinstance(style, str) else style))
        self.text += strip_control_codes(text).replace("\t", "    ")
        width = self.content_region.width
        if width <= 0:  # not laid out yet: the layout wraps it
            return False
        if width != self._width:
            self._rewrap(width)
            self.refresh(layout=True)
            return True
        old_tail, first = self._tail, len(self._lines)
        self._wrap()
        count = self.line_count
        if count > self._rows:
            self._rows = count + self.reserve
            self.refresh(layout=True)
            return True
        new_tail = self._lines[first:] + self._tail
        same = next((i for i, (a, b) in enumerate(zip(old_tail, new_tail)) if a != b), min(len(old_tail), len(new_tail)))
        changed = max(len(old_tail), len(new_tail)) - same
        if changed:
            self.refresh(Region(0, first + same, width, changed))
        return False

    def clear(self) -> None:
        """Empty, for a new stream."""
        self._clear()
        self.streaming = True
        self._rows = 1 + self.reserve
        self.refresh(layout=True)

    def finish(self, text: Optional[str] = None) -> None:
        """The stream has ended (with `text` in place of what streamed, if given)."""
        if text is not None:
            self._clear()
            self.append(text)
        self.streaming = False
        self.refresh(layout=True)

    def _rewrap(self, width: int) -> None:
        self._width, self._lines, self._open = width, [], 0
        self._wrap()
        self._rows = max(self._rows, self.line_count)

    def _wrap(self) -> None:
        """Wrap the text from the last paragraph on; paragraphs that have ended keep their lines."""
        *ended, last = self.text[self._open:].split("\n")
        for paragraph in ended:
            self._lines += self._divide(paragraph, self._open)
            self._open += len(paragraph) + 1
        self._tail = self._divide(last, self._open)

    def _divide(self, paragraph: str, offset: int) -> List[Tuple[int, str]]:
        starts = [0, *divide_line(paragraph, self._width, fold=True)]
        return [(offset + a, paragraph[a:b].rstrip()) for a, b in zip(starts, starts[1:] + [len(paragraph)])]

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if width != self._width:
            self._rewrap(width)
        return self._rows if self.streaming else self.line_count

    def render_line(self, y: int) -> Strip:
        base, lines = self.rich_style, len(self._lines)
        offset, line = self._lines[y] if y < lines else self._tail[y - lines] if y - lines < len(self._tail) else (0, "")
        end = offset + len(line)
        segments = []
        for i, (start, style) in enumerate(self._styles):
            stop = self._styles[i + 1][0] if i + 1 < len(self._styles) else end
            a, b = max(start, offset), min(stop, end)
            if a < b:
                segments.append(Segment(line[a - offset:b - offset], base + style if style else base))
        return Strip(segments, cell_len(line)).crop_extend(0, self.size.width, base)


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
                yield StreamText(classes="candidate-text", id=f"candidate-text-{i}")

    def on_mount(self) -> None:
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
