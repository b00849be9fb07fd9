"""Drawing that spares the screen a layout pass where it can (see redraw)."""

from __future__ import annotations

from textual.widgets import Static


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
