"""The ASGI app and its life: which models it serves, who may call it, how requests are read and
refused. Routes live in aleph.py (the Aleph Alpha API) and openai.py (the OpenAI-compatible API).

Every refusal is a 4xx with the message as InvalidRequest says it (the field and what is
allowed): the Aleph API's error body `{"error": message, "code": ...}`, or OpenAI's error object on
its routes. Never a 5xx for a request that would fail again: the Aleph client retries every 5xx
for about 90 seconds. Only a full queue answers 503, with Retry-After.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Sequence

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..backend import BusyError
from ..client import AsyncClient, Client
from ..models import ModelError
from ..validation import InvalidRequest

log = logging.getLogger("edgecomplete.server")

API_VERSION = "1.19.0"  # the Aleph Alpha API version whose contract this server follows
MAX_BODY_BYTES = 32 * 1024 * 1024  # a request body at most (prompts with images included)
HEAD_SECONDS = 10.0  # a request's line and headers must arrive within this (slowloris)
BODY_SECONDS = 60.0  # and its body within this


class HttpError(Exception):
    """A refusal: its status, the Aleph error code, and the message."""

    def __init__(self, status: int, code: str, message: str, headers: Optional[Dict[str, str]] = None,
                 param: Optional[str] = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}
        self.param = param  # the request field it is about, where one is


class Served:
    """What the routes share: the client over the backend (every route is a call of the
    in-process API), and the models this server was started with (a request never names a
    file: only these)."""

    def __init__(self, client: Client, models: Sequence[str], token: Optional[str]):
        self.client = AsyncClient(client=client)
        self.backend = client.backend
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
        try:
            async with asyncio.timeout(BODY_SECONDS):  # a client that trickles its body is let go
                async for part in request.stream():
                    data += part
                    if len(data) > MAX_BODY_BYTES:
                        raise HttpError(413, "REQUEST_TOO_LARGE", f"the body is over {MAX_BODY_BYTES} bytes")
        except TimeoutError:
            raise HttpError(408, "REQUEST_TIMEOUT", f"the body did not arrive within {BODY_SECONDS:.0f} s") from None
        try:
            value = json.loads(bytes(data).decode("utf-8"), parse_int=_json_int)
        except UnicodeDecodeError as error:
            raise HttpError(400, "INVALID_REQUEST", f"the body is not UTF-8 ({error.reason} at byte {error.start})")
        except json.JSONDecodeError as error:
            raise HttpError(400, "INVALID_REQUEST", f"the body is not JSON: {error}")
        except RecursionError:
            raise HttpError(400, "INVALID_REQUEST", "the body nests deeper than the JSON parser allows") from None
        if not isinstance(value, dict):
            raise HttpError(400, "INVALID_REQUEST", f"the body must be a JSON object, got {type(value).__name__}")
        return value


def _json_int(digits: str) -> Any:
    """An integer of the body; one past Python's int-to-str limit (4,300 digits, far past any
    field's range) becomes an infinity, which validation refuses naming its field."""
    if len(digits) <= 4000:
        return int(digits)
    return -math.inf if digits.startswith("-") else math.inf


def served_for(request: Request) -> Served:
    """What the routes share, once the caller has shown the token (where one is required)."""
    served: Served = request.app.state.served
    served.check_token(request)
    return served


def sse(value: Any) -> bytes:
    """One server-sent event: a `data:` line of compact JSON, as both APIs' clients read them."""
    return f"data: {json.dumps(value, ensure_ascii=False)}\n\n".encode("utf-8")


async def primed(items: AsyncIterator[Any]) -> "Primed":
    """`items` with its first item awaited now, so that a request failing at its first step
    (completion-bias constraints that leave no token) is refused before the 200 goes out."""
    try:
        head = [await items.__anext__()]
    except StopAsyncIteration:
        head = []
    except BaseException:
        await items.aclose()
        raise
    return Primed(head, items)


class Primed:
    """The items already taken, then the rest; closing it closes `items` (started or not)."""

    def __init__(self, head: List[Any], items: AsyncIterator[Any]):
        self.head, self.items = head, items

    def __aiter__(self) -> "Primed":
        return self

    async def __anext__(self) -> Any:
        if self.head:
            return self.head.pop(0)
        return await self.items.__anext__()

    async def aclose(self) -> None:
        await self.items.aclose()


def event_stream(served: Served, events: AsyncIterator[bytes],
                 error_event: Callable[[HttpError], bytes]) -> StreamingResponse:
    """`events` as server-sent events, flushed one by one. A client that goes away cancels the
    stream and so closes `events` (which cancels its request); so does the server stopping. A
    request that fails after the 200 (a later step's constraints leave no token) ends its
    stream with `error_event` of the error, as the status code it would have had."""
    async def until_stopped() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                if served.stopping:
                    break
                yield event
        except Exception as error:
            log.warning("a stream failed after its 200: %s", error)
            yield error_event(http_error(error))
        finally:
            await events.aclose()
    return StreamingResponse(until_stopped(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# The paths whose refusals take OpenAI's error object (chat/completions is both APIs' route; the
# Aleph client reads any 4xx body as text, so OpenAI's shape serves both there).
OPENAI_PATHS = {"/completions", "/chat/completions", "/models"}
_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                 413: "invalid_request_error", 503: "server_busy"}


def openai_error(error: HttpError) -> Dict[str, Any]:
    return {"error": {"message": error.message, "type": _OPENAI_TYPES.get(error.status, "error"),
                      "param": error.param, "code": error.code}}


def aleph_error(error: HttpError) -> Dict[str, Any]:
    return {"error": error.message, "code": error.code}


def http_error(error: Exception) -> HttpError:
    """The HttpError a route's exception answers with (what the exception handlers send)."""
    if isinstance(error, HttpError):
        return error
    if isinstance(error, BusyError):
        return HttpError(503, "QUEUE_FULL", str(error), headers={"Retry-After": str(error.retry_after)})
    if isinstance(error, ModelError):
        return HttpError(400, "MODEL_ERROR", str(error))
    if isinstance(error, ValueError):
        return HttpError(400, "INVALID_REQUEST", str(error),
                         param=error.field if isinstance(error, InvalidRequest) else None)
    return HttpError(500, "INTERNAL_ERROR", f"the request failed: {type(error).__name__}: {error}")


def error_response(request: Request, error: HttpError) -> JSONResponse:
    path = request.url.path.removeprefix("/v1")
    body = openai_error(error) if path in OPENAI_PATHS else aleph_error(error)
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def create_app(client: Client, models: Sequence[str], token: Optional[str] = None) -> FastAPI:
    """The app serving `models` (already loaded, or loaded on first use) through `client`."""
    from .aleph import aleph_routes
    from .openai import openai_routes

    app = FastAPI(title="edgecomplete", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.served = Served(client, models, token)

    async def refused(request: Request, error: Exception) -> JSONResponse:
        return error_response(request, http_error(error))

    # InvalidRequest and the data classes' from_json are ValueErrors
    for kind in (HttpError, ValueError, ModelError, BusyError):
        app.add_exception_handler(kind, refused)

    for routes in (aleph_routes(), openai_routes()):
        app.include_router(routes)  # the Aleph client appends the endpoint to its host: with and without /v1
        app.include_router(routes, prefix="/v1")
    return app


class TimedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, which also closes a connection whose request line and headers
    do not arrive within HEAD_SECONDS (uvicorn times out idle keep-alive connections, not slow
    ones): a slowloris client holds a connection for that long at most, never a request slot."""

    _head_timer: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        waiting_for_head = self.cycle is None or self.cycle.response_complete
        if waiting_for_head and self._head_timer is None:
            self._start_head_timer()  # a new request on a kept-alive connection
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete and self._head_timer is not None:
            self._head_timer.cancel()  # its head is in: the app has it
            self._head_timer = None

    def connection_lost(self, exc) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()


def server_config(app, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    """uvicorn's settings for the app: slow heads and idle connections are let go."""
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5,
                          http=TimedH11, timeout_keep_alive=5)


class _Server(uvicorn.Server):
    """uvicorn's server, which also tells the app when it is asked to stop: uvicorn waits for
    open connections before it shuts down, and a stream only ends when its completion does."""

    def __init__(self, config: uvicorn.Config, served: Served):
        super().__init__(config)
        self._served = served

    def handle_exit(self, sig, frame) -> None:
        self._served.stopping = True
        super().handle_exit(sig, frame)


def serve(client: Client, models: Sequence[str], host: str = "127.0.0.1", port: int = 8400,
          token: Optional[str] = None, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl+C, SIGTERM): streams in flight end (their requests are
    cancelled, their cells freed), then the server stops; the caller closes the client."""
    app = create_app(client, models, token)
    _Server(server_config(app, host, port, log_level), app.state.served).run()
