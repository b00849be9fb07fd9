"""Streamed text drawn a line at a time, and keeping its last line in view."""

from __future__ import annotations

from typing import List, Optional, Tuple, Union

from rich._wrap import divide_line  # Text.wrap's own line breaking (rich is pinned for it)
from rich.cells import cell_len
from rich.control import strip_control_codes
from rich.segment import Segment
from rich.style import Style
from textual.containers import VerticalScroll
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

STREAM_RESERVE = 6


def follow(scroll: VerticalScroll, widget: Widget, line: int) -> None:
    """Keep `line` of `widget` (a child of `scroll`, with spare lines below it) in view as text
    streams in. The view moves a third of its height at a time, not a line at a time: each move
    redraws all of it (and keys typed meanwhile wait for that)."""
    bottom = widget.virtual_region.y + line
    height = scroll.scrollable_content_region.height
    if bottom > scroll.scroll_y + height:
        scroll.scroll_to(y=bottom + max(STREAM_RESERVE, height // 3) - height, animate=False)



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
