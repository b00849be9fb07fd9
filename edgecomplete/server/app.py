"""The ASGI app and its life: which models it serves, who may call it, how requests are read and
refused. Routes live in aleph.py.

Every refusal is a 4xx with the Aleph API's error body `{"error": message, "code": ...}`, the
message as InvalidRequest says it (the field and what is allowed). Never a 5xx for a request that
would fail again: the Aleph client retries every 5xx for about 90 seconds.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, Dict, Optional, Sequence

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..backend import Backend
from ..models import ModelError

API_VERSION = "1.19.0"  # the Aleph Alpha API version whose contract this server follows
MAX_BODY_BYTES = 32 * 1024 * 1024  # a request body at most (prompts with images included)


class HttpError(Exception):
    """A refusal: its status, the Aleph error code, and the message."""

    def __init__(self, status: int, code: str, message: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class Served:
    """What the routes share: the backend and the models this server was started with (a request
    never names a file: only these)."""

    def __init__(self, backend: Backend, models: Sequence[str], token: Optional[str]):
        self.backend = backend
        self.models = list(models)
        self._token = token
        self.stopping = False  # the server was told to stop: streams in flight end at their next item

    def check_token(self, request: Request) -> None:
        if self._token is None:
            return
        given = request.headers.get("authorization", "")
        expected = f"Bearer {self._token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise HttpError(401, "UNAUTHENTICATED", "a valid token is required: Authorization: Bearer <token>")

    def model(self, body: Dict[str, Any]) -> str:
        name = body.get("model")
        if not isinstance(name, str):
            raise HttpError(400, "INVALID_REQUEST", f"model: must be the name of a served model, got {name!r}")
        if name not in self.models:
            raise HttpError(404, "UNKNOWN_MODEL",
                            f"model: unknown model {name!r}; this server serves {', '.join(self.models)}")
        return name

    async def body(self, request: Request) -> Dict[str, Any]:
        """The JSON object of the request body: 413 over the limit, 400 for anything not JSON."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise HttpError(413, "REQUEST_TOO_LARGE", f"the body is over {MAX_BODY_BYTES} bytes")
        data = bytearray()
        async for part in request.stream():
            data += part
            if len(data) > MAX_BODY_BYTES:
                raise HttpError(413, "REQUEST_TOO_LARGE", f"the body is over {MAX_BODY_BYTES} bytes")
        try:
            value = json.loads(bytes(data).decode("utf-8"))
        except UnicodeDecodeError as error:
            raise HttpError(400, "INVALID_REQUEST", f"the body is not UTF-8 ({error.reason} at byte {error.start})")
        except json.JSONDecodeError as error:
            raise HttpError(400, "INVALID_REQUEST", f"the body is not JSON: {error}")
        if not isinstance(value, dict):
            raise HttpError(400, "INVALID_REQUEST", f"the body must be a JSON object, got {type(value).__name__}")
        return value


def error_response(error: HttpError) -> JSONResponse:
    return JSONResponse({"error": error.message, "code": error.code}, status_code=error.status,
                        headers=error.headers)


def create_app(backend: Backend, models: Sequence[str], token: Optional[str] = None) -> FastAPI:
    """The app serving `models` (already loaded, or loaded on first use) on `backend`."""
    from .aleph import aleph_routes

    app = FastAPI(title="edgecomplete", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.served = Served(backend, models, token)

    @app.exception_handler(HttpError)
    async def refused(request: Request, error: HttpError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(ValueError)  # InvalidRequest and the data classes' from_json
    async def invalid(request: Request, error: ValueError) -> JSONResponse:
        return error_response(HttpError(400, "INVALID_REQUEST", str(error)))

    @app.exception_handler(ModelError)
    async def model_error(request: Request, error: ModelError) -> JSONResponse:
        return error_response(HttpError(400, "MODEL_ERROR", str(error)))

    routes = aleph_routes()
    app.include_router(routes)  # the client appends the endpoint to its host: with and without /v1
    app.include_router(routes, prefix="/v1")
    return app


class _Server(uvicorn.Server):
    """uvicorn's server, which also tells the app when it is asked to stop: uvicorn waits for
    open connections before it shuts down, and a stream only ends when its completion does."""

    def __init__(self, config: uvicorn.Config, served: Served):
        super().__init__(config)
        self._served = served

    def handle_exit(self, sig, frame) -> None:
        self._served.stopping = True
        super().handle_exit(sig, frame)


def serve(backend: Backend, models: Sequence[str], host: str = "127.0.0.1", port: int = 8400,
          token: Optional[str] = None, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl+C, SIGTERM): streams in flight end (their requests are
    cancelled, their cells freed), then the server stops; the caller closes the backend."""
    app = create_app(backend, models, token)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
    _Server(config, app.state.served).run()
