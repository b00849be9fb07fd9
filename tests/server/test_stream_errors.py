"""A stream that fails after its 200 ends with an error event in its API's shape (the Aleph
API has no such event: edgecomplete's is {"type": "error", ...}, which the Aleph client raises on;
OpenAI's {"error": {...}} is what the openai client raises on), and a remote backend reading
either raises RemoteError with the message. The failing stream is a stand-in: validation refuses
every failure the engine can foresee before the 200 (test_fuzz_corpus.py)."""

from contextlib import contextmanager
from types import SimpleNamespace

import httpx
import openai
import pytest
from fastapi import FastAPI

from edgecomplete import InvalidRequest
from edgecomplete.remote.http import Http, RemoteError
from edgecomplete.server.app import aleph_error, event_stream, openai_error, sse

from .conftest import uvicorn_serving


async def fails_after_one_event():
    yield sse({"type": "stream_chunk", "index": 0, "completion": " the"})
    raise InvalidRequest("completion_bias_inclusion", "no token is left to generate")


@contextmanager
def failing_server():
    app = FastAPI()
    served = SimpleNamespace(stopping=False)

    @app.post("/complete")
    async def aleph():
        return event_stream(served, fails_after_one_event(), lambda error: sse({"type": "error", **aleph_error(error)}))

    @app.post("/v1/completions")
    async def openai():
        return event_stream(served, fails_after_one_event(), lambda error: sse(openai_error(error)))

    with uvicorn_serving(app, "error") as url:
        yield url


@pytest.mark.parametrize("path", ["/complete", "/v1/completions"])
def test_a_failure_after_the_200_ends_the_stream_with_an_error_event(path):
    with failing_server() as url:
        text = httpx.post(f"{url}{path}", json={}, timeout=30).text
        events = [line for line in text.split("\n") if line.startswith("data: ")]
        assert len(events) == 2 and '"completion": " the"' in events[0]
        assert "completion_bias_inclusion: no token is left to generate" in events[1]
        remote = Http(url, "test")
        with pytest.raises(RemoteError, match="the stream failed: completion_bias_inclusion: no token is left"):
            list(remote.events(path, {}))


def test_the_openai_client_raises_on_the_error_event():
    with failing_server() as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIError, match="no token is left"):
            list(client.completions.create(model="m", prompt="x", stream=True))
