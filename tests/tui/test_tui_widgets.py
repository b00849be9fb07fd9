"""The streaming text widget: wraps as rich does (what the finished reply shows), however the text
arrives; repaints only the lines that changed; takes spare lines so the screen's layout is not
redone for every line."""

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll

from tui.widgets import STREAM_RESERVE, StreamText

from .helpers import drive

CONSOLE = Console(width=300)

texts = st.lists(st.sampled_from(list("ab cé漢\n\t") + ["  ", "word ", "lighthouse"]), max_size=120).map("".join)


def streamed(text: str, cuts, width: int) -> StreamText:
    """`text` added to a StreamText wrapped at `width`, in pieces cut at `cuts`."""
    widget = StreamText()
    widget._width = width
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    for a, b in zip(points, points[1:]):
        widget.text += text[a:b]
        widget._wrap()
    return widget


@settings(max_examples=400, deadline=None)
@given(text=texts, cuts=st.lists(st.integers(0, 300), max_size=40), width=st.integers(2, 40))  # a wide character needs 2
def test_lines_are_rich_wrap_of_the_whole_text_however_it_arrives(text, cuts, width):
    shown = text.replace("\t", "    ")  # as the widget shows tabs
    widget = streamed(shown, cuts, width)
    expected = [line.plain.rstrip() for line in Text(shown).wrap(CONSOLE, width)]
    assert widget.lines == expected
    assert all(Text(line).cell_len <= width for line in widget.lines)


class Host(App):
    def compose(self) -> ComposeResult:
        with VerticalScroll(id="log"):
            yield StreamText(id="stream")


def test_stream_repaints_changed_lines_grows_by_reserve_and_keeps_styles():
    async def scenario(pilot, app):
        stream = app.query_one(StreamText)
        await pilot.pause()
        assert stream.size.height == 1 + STREAM_RESERVE  # one line and its spare ones
        width = stream.content_region.width

        assert stream.append("lead text ", "dim") is False
        assert stream.append("and the body", "bold cyan") is False
        await pilot.pause()
        line = stream.render_line(0)
        assert line.text.rstrip() == "lead text and the body"
        assert line.cell_length == width
        styles = {segment.text: segment.style for segment in line if segment.text.strip()}
        assert Style.parse("dim") + styles["lead text "] == styles["lead text "]  # dim
        assert styles["and the body"].bold and styles["and the body"].color.name == "cyan"

        # A word that fits changes only the last line: only it is repainted.
        repainted = []
        original = stream.refresh

        def refresh(*regions, **kwargs):
            repainted.append((regions, kwargs))
            return original(*regions, **kwargs)

        stream.refresh = refresh
        stream.append("\nsecond")
        assert len(repainted) == 1
        (region,), options = repainted[0]
        assert (region.y, region.height, options) == (1, 1, {})

        # Past its spare lines the widget takes more at once (one layout pass).
        repainted.clear()
        grew = stream.append("\n" * (STREAM_RESERVE + 1))
        assert grew and repainted[-1][1] == {"layout": True}
        await pilot.pause()
        assert stream.size.height == stream.line_count + STREAM_RESERVE

        # Finished: as tall as its text; given a text, that text replaces what streamed.
        stream.finish("one\ntwo")
        await pilot.pause()
        assert stream.lines == ["one", "two"] and stream.size.height == 2
    drive(Host(), scenario, size=(40, 20), loaded=False)
