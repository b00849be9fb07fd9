"""`edgecomplete serve`: the Aleph Alpha HTTP API and the OpenAI-compatible API on a local server,
a face over the same seam (backend.Backend) as Client, the CLI and the terminal UI: one engine,
one decode loop, shared by every HTTP client. FastAPI on uvicorn (the `serve` extra)."""

from .app import API_VERSION, create_app, serve

__all__ = ["API_VERSION", "create_app", "serve"]
