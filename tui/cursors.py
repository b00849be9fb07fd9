"""Steady cursors while a reply streams."""

from __future__ import annotations

from typing import Iterable, List

from textual.dom import DOMNode
from textual.widget import Widget


class SteadyCursors:
    """While a reply streams, text cursors stop blinking: every blink redraws the screen, UI time
    taken from the model's decode on a machine whose cores all run llama.cpp. Only the focused
    widget's cursor blinks, so only its watcher runs: Input's watcher starts the blink timer on
    `cursor_blink = True` even without focus, and twenty parameter fields would then redraw the
    screen forty times a second while the app sits idle. Held once per generation (chat and
    playground may both stream); the cursors blink again when the last one ends."""

    def __init__(self, region: DOMNode):
        self._region = region  # the widgets whose cursors hold still
        self._holds = 0
        self._blinking: List[Widget] = []

    def hold(self) -> None:
        self._holds += 1
        if self._holds == 1:
            self._blinking = [widget for widget in self._region.query("Input, TextArea") if widget.cursor_blink]
            self._set_blink(self._blinking, False)

    def release(self) -> None:
        if self._holds == 0:
            return
        self._holds -= 1
        if self._holds == 0:
            self._set_blink(self._blinking, True)
            self._blinking = []

    def _set_blink(self, widgets: Iterable[Widget], blink: bool) -> None:
        for widget in widgets:
            if widget is self._region.screen.focused:
                widget.cursor_blink = blink
            else:  # its timer is paused while it has no focus; focusing it starts one if it blinks
                widget.set_reactive(type(widget).cursor_blink, blink)
