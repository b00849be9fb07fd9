"""edgecomplete's terminal UI (Textual): chat and completion playground over the same
CompletionRequest / streaming API as the Python client. Start it with `edgecomplete tui` or
`python -m tui`."""

__all__ = ["EdgeCompleteApp", "main"]


def __getattr__(name: str):
    # The app (and Textual) load on first use: `edgecomplete chat` uses only the session store.
    if name in __all__:
        from . import app
        return getattr(app, name)
    raise AttributeError(f"module 'tui' has no attribute {name!r}")
