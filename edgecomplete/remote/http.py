"""HTTP to a remote engine: one connection pool per backend (and per event loop for asyncio
code), bearer tokens, TLS, timeouts, retries with backoff for idempotent calls only, and every
failure turned into an error that says which host did what.

Errors: the backend's 400/422 become InvalidRequest (its message kept), 503 and 429 BusyError
(retried for idempotent calls), other 5xx and transport failures RemoteError.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator, Dict, Iterator, Mapping, Optional

import httpx

from ..backend import BusyError
from ..validation import InvalidRequest

RETRY_DELAYS = (0.5, 1.0, 2.0)  # seconds before each retry of an idempotent call


class RemoteError(Exception):
    """A remote backend failed: unreachable, timed out, refused the token, or answered 5xx."""


class Http:
    """Calls to one base URL (`host`, e.g. http://gpu-box:8000) in the name of `backend`."""

    def __init__(self, host: str, backend: str, token: Optional[str] = None, verify_ssl: bool = True,
                 timeout: float = 305.0):
        if not host.startswith(("http://", "https://")):
            raise InvalidRequest("host", f"must be an http:// or https:// URL, got {host!r}")
        self.host, self.backend = host.rstrip("/"), backend
        self._options: Dict[str, Any] = dict(
            base_url=self.host, verify=verify_ssl, timeout=httpx.Timeout(timeout, connect=10.0),
            # An idle connection is dropped before the server drops it (llama-server after 5 s): a
            # request sent on a connection the server has just closed fails unanswered.
            limits=httpx.Limits(max_keepalive_connections=20, keepalive_expiry=1.0),
            headers={"Authorization": f"Bearer {token}"} if token else {})
        self._sync = httpx.Client(**self._options)
        self._async: Dict[int, httpx.AsyncClient] = {}  # one per event loop

    def _aclient(self) -> httpx.AsyncClient:
        loop = id(asyncio.get_running_loop())
        if loop not in self._async:
            self._async[loop] = httpx.AsyncClient(**self._options)
        return self._async[loop]

    # ---- whole answers ---------------------------------------------------------------------------

    def call(self, method: str, path: str, body: Optional[Mapping[str, Any]] = None,
             idempotent: bool = False) -> Any:
        """The JSON answer of `method path` (retried with backoff when idempotent)."""
        for delay in (*RETRY_DELAYS, None):
            try:
                response = self._sync.request(method, path, json=body)
                return self._answer(response, path)
            except (RemoteError, BusyError) as error:
                if not idempotent or delay is None or not getattr(error, "retryable", True):
                    raise
                time.sleep(delay)
            except httpx.HTTPError as error:
                if not idempotent or delay is None:
                    raise self._failure(path, error) from None
                time.sleep(delay)
        raise AssertionError("unreachable")

    async def acall(self, method: str, path: str, body: Optional[Mapping[str, Any]] = None,
                    idempotent: bool = False) -> Any:
        for delay in (*RETRY_DELAYS, None):
            try:
                response = await self._aclient().request(method, path, json=body)
                return self._answer(response, path)
            except (RemoteError, BusyError) as error:
                if not idempotent or delay is None or not getattr(error, "retryable", True):
                    raise
                await asyncio.sleep(delay)
            except httpx.HTTPError as error:
                if not idempotent or delay is None:
                    raise self._failure(path, error) from None
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    # ---- server-sent events -----------------------------------------------------------------------

    def events(self, path: str, body: Mapping[str, Any]) -> Iterator[Any]:
        """The JSON of each `data:` event of a streamed POST; `[DONE]` ends it. Closing the
        iterator closes the HTTP stream (the backend sees the client leave)."""
        try:
            with self._sync.stream("POST", path, json=body, headers=_ONE_SHOT) as response:
                if response.status_code >= 400:
                    response.read()
                    self._answer(response, path)
                for line in response.iter_lines():
                    event = _event(line)
                    if event is _DONE:
                        return
                    if _is_error(event):
                        raise RemoteError(f"{self.backend} backend {self.host}{path}: the stream failed: "
                                          f"{_error_text(event)}")
                    if event is not None:
                        yield event
        except httpx.HTTPError as error:
            raise self._failure(path, error) from None

    async def aevents(self, path: str, body: Mapping[str, Any]) -> AsyncIterator[Any]:
        try:
            async with self._aclient().stream("POST", path, json=body, headers=_ONE_SHOT) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._answer(response, path)
                async for line in response.aiter_lines():
                    event = _event(line)
                    if event is _DONE:
                        return
                    if _is_error(event):
                        raise RemoteError(f"{self.backend} backend {self.host}{path}: the stream failed: "
                                          f"{_error_text(event)}")
                    if event is not None:
                        yield event
        except httpx.HTTPError as error:
            raise self._failure(path, error) from None

    # ---- failures ----------------------------------------------------------------------------------

    def _answer(self, response: httpx.Response, path: str) -> Any:
        if response.status_code < 400:
            try:
                return response.json()
            except ValueError:
                raise RemoteError(f"{self.backend} backend {self.host}{path}: the answer is not JSON: "
                                  f"{response.text[:200]!r}") from None
        message = _message(response)
        status = response.status_code
        if status in (400, 404, 422):
            raise InvalidRequest(_field(response) or "request", f"the {self.backend} backend at {self.host} "
                                 f"refused it ({status}): {message}")
        if status in (429, 503):
            raise BusyError(f"the {self.backend} backend at {self.host} is busy ({status}): {message}",
                            int(response.headers.get("retry-after", "1") or 1))
        error = RemoteError(f"the {self.backend} backend at {self.host}{path} answered {status}: {message}"
                            + (" (is the token right?)" if status in (401, 403) else ""))
        error.retryable = status >= 500  # type: ignore[attr-defined]
        raise error

    def _failure(self, path: str, error: httpx.HTTPError) -> RemoteError:
        kind = "timed out" if isinstance(error, httpx.TimeoutException) else "failed"
        return RemoteError(f"the {self.backend} backend at {self.host}{path} {kind}: {error or type(error).__name__}")

    def close(self) -> None:
        self._sync.close()
        for client in self._async.values():
            try:
                asyncio.get_running_loop()
                asyncio.ensure_future(client.aclose())
            except RuntimeError:  # no loop runs: its transports went with their loop
                pass
        self._async.clear()


_DONE = object()
# A stream's connection is not reused: llama-server closes it after a streamed answer without
# saying so, and the next request sent on it would fail unanswered.
_ONE_SHOT = {"Connection": "close"}


def _event(line: str) -> Any:
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return _DONE
    return json.loads(data) if data else None


def _is_error(event: Any) -> bool:
    """An error event of a stream that failed after its 200: OpenAI's (and vLLM's) {"error":
    {...}}, or edgecomplete serve's Aleph-route {"type": "error", "error": ...}."""
    return isinstance(event, dict) and "error" in event and event.get("type", "error") == "error"


def _error_text(event: Dict[str, Any]) -> str:
    error = event["error"]
    return str(error.get("message") or error if isinstance(error, dict) else error)[:500]


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error)[:500]
        return str(error)[:500]
    return str(body)[:500]


def _field(response: httpx.Response) -> Optional[str]:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("param") if isinstance(error, dict) and isinstance(error.get("param"), str) else None
