"""edgecomplete's terminal UI (Textual): chat and completion playground over the same
CompletionRequest / streaming API as the Python client. Start it with `edgecomplete tui` or
`python -m tui`."""

from .app import EdgeCompleteApp, main

__all__ = ["EdgeCompleteApp", "main"]
