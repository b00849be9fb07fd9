"""The seam: Client and AsyncClient are thin over a Backend. A request goes down once (validated
once, planned once, folded once), and the faces run unchanged over any Backend."""

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

import edgecomplete.client
import edgecomplete.engine.local as local
from edgecomplete import AsyncClient, Client, CompletionRequest, InvalidRequest, Prompt, TokenizationRequest
from edgecomplete.backend import Backend
from edgecomplete.engine import LocalBackend
from edgecomplete.engine.kv import cells_needed, max_new_tokens

from ..conftest import MODEL

REQUEST = CompletionRequest(prompt=Prompt.from_text("The sea is"), maximum_tokens=4)


@pytest.fixture
def calls(monkeypatch):
    """How often each layer ran: validation, planning, folding."""
    counts = {"check_request": 0, "plan_completion": 0, "fold": 0}

    def counted(module, name):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            counts[name] += 1
            return original(*args, **kwargs)
        monkeypatch.setattr(module, name, wrapper)

    counted(local, "check_request")
    counted(local, "plan_completion")
    counted(edgecomplete.client, "fold")
    return counts


def test_complete_goes_down_once(client, calls):
    client.complete(REQUEST, MODEL)
    assert calls == {"check_request": 1, "plan_completion": 1, "fold": 1}


def test_streaming_goes_down_once_and_folds_nothing(client, calls):
    list(client.complete_with_streaming(REQUEST, MODEL))
    assert calls == {"check_request": 1, "plan_completion": 1, "fold": 0}


def test_the_async_path_goes_down_once(client, calls):
    async def run():
        shared = AsyncClient(client=client)
        await shared.complete(REQUEST, MODEL)
        return [item async for item in shared.complete_with_streaming(REQUEST, MODEL)]

    asyncio.run(run())
    assert calls == {"check_request": 2, "plan_completion": 2, "fold": 1}  # two requests


def test_a_bad_request_stops_at_validation(client, calls):
    with pytest.raises(InvalidRequest):
        client.complete(CompletionRequest(prompt=Prompt.from_text("x"), n=0), MODEL)
    assert calls == {"check_request": 1, "plan_completion": 0, "fold": 0}


class RecordingBackend:
    """Another Backend: delegates to the local one and records what the faces asked of it."""

    def __init__(self, inner: LocalBackend):
        self.inner, self.asked = inner, []

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def record(*args, **kwargs):
            self.asked.append(name)
            return method(*args, **kwargs)
        return record


def test_the_local_engine_is_a_backend(client):
    assert isinstance(client.backend, Backend)


def test_faces_run_unchanged_over_another_backend(client):
    backend = RecordingBackend(client.backend)
    other = Client(backend=backend)
    expected = client.complete(REQUEST, MODEL)
    assert other.complete(REQUEST, MODEL) == expected
    assert other.tokenize(TokenizationRequest("Hi", tokens=True, token_ids=True), MODEL) == \
        client.tokenize(TokenizationRequest("Hi", tokens=True, token_ids=True), MODEL)
    assert other.model_info(MODEL)["chat"] is True

    async def run():
        shared = AsyncClient(client=other)
        return await shared.complete(REQUEST, MODEL)

    assert asyncio.run(run()) == expected
    assert backend.asked == ["stream", "tokenize", "model_info", "astream"]


@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 16))
def test_the_token_limit_is_the_largest_that_fits_the_cells_and_positions(prompt, context, candidates):
    """validation's limit (max_new_tokens) and the engine's reservation (cells_needed) agree."""
    limit = max_new_tokens(prompt, context, candidates)

    def fits(maximum_tokens):
        return cells_needed(prompt, candidates, maximum_tokens) <= context and prompt + maximum_tokens <= context
    if prompt <= context:
        assert fits(limit)
    assert not fits(limit + 1)
