"""Snapshots pin the main screens of the terminal UI (update with `pytest --snapshot-update`)."""

from textual.widgets import Input, TextArea

from tui.screens import TokenInspector


async def settle(pilot):
    """Wait for the model, and stop cursors blinking so screens render the same every time."""
    app = pilot.app
    while not app.stats.context_length or app.focused is None:  # loaded, and the input focused
        await pilot.pause(0.02)
    for widget in app.query("Input, TextArea"):
        widget.cursor_blink = False
        if isinstance(widget, TextArea):
            # Its line cache does not tell a steady cursor from a blinked-off one: drawn again,
            # the focused input shows its cursor every time.
            widget._line_cache.clear()
            widget.refresh()
    await pilot.pause(0.1)


def test_chat_screen_at_80x24(snap_compare, make_app):
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=settle)


def test_parameter_panel_with_an_invalid_value(snap_compare, make_app):
    async def run_before(pilot):
        await settle(pilot)
        pilot.app.query_one("#param-temperature", Input).value = "-1"
        pilot.app.query_one("#param-n", Input).value = "2"
        await pilot.pause(0.1)

    assert snap_compare(make_app(), terminal_size=(120, 36), run_before=run_before)


def test_playground_screen(snap_compare, make_app):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("f3")
        pilot.app.query_one("#playground-buffer", TextArea).load_text("Once upon a time")
        await pilot.pause(0.1)

    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=run_before)


def test_token_inspector(snap_compare, make_app):
    tokens = [" The", " sea", " was", " calm", "."]
    log_probs = [{" The": -0.1, " A": -2.5}, {" sea": -1.2, " sky": -0.9, " lake": -3.0},
                 {" was": -0.05}, {" calm": -2.3, " rough": -0.4, " blue": -1.9}, {".": -0.2, ",": -1.8}]

    async def run_before(pilot):
        await settle(pilot)
        pilot.app.push_screen(TokenInspector(tokens, log_probs))
        await pilot.pause(0.1)
        await pilot.press("right", "right", "right")
        await pilot.pause(0.1)

    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=run_before)
