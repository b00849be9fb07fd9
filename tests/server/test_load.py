"""The server under load, over real HTTP on loopback, with the engine in this process so that its
state can be read: a client that leaves frees its sequence and cells, 32 concurrent streams each
get exactly what they get alone, and a full queue answers 503 with Retry-After."""

import asyncio
import json
import time

import aleph_alpha_client as aleph
import httpx
import pytest

from edgecomplete import Client
from edgecomplete.engine import LocalBackend

from ..conftest import MODEL
from .conftest import TOKEN, app_server, hang_up, open_stream, raw

LONG = {"model": MODEL, "prompt": "Tell a long story.", "maximum_tokens": 3000, "minimum_tokens": 3000,
        "stream": True}


def wait_until_idle(engine, seconds=10.0):
    deadline = time.monotonic() + seconds
    while True:
        stats = engine.stats()
        if stats["requests_active"] == stats["requests_waiting"] == stats["sequence_ids_in_use"] == 0:
            return stats
        assert time.monotonic() < deadline, f"still busy after {seconds} s: {stats}"
        time.sleep(0.05)


@pytest.mark.parametrize("path,body", [
    ("/v1/complete", LONG),
    ("/v1/completions", {"model": MODEL, "prompt": "Tell a long story.", "max_tokens": 3000, "stream": True,
                         "minimum_tokens": 3000}),
    ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "Tell a long story."}],
                              "max_tokens": 3000, "minimum_tokens": 3000, "stream": True}),
])
def test_a_client_that_disconnects_frees_its_sequence_and_cells(client, engine, path, body):
    with app_server(client, TOKEN) as url:
        connection, response = open_stream(url, path, body)
        assert engine.stats()["requests_active"] == 1
        hang_up(connection)  # gone mid-stream
        started = engine.stats()
        stats = wait_until_idle(engine)
        assert stats["sequences_with_cells"] == 0  # no candidate sequence holds KV cells
        assert stats["retired_cells"] < started["retired_cells"] + 3000  # stopped long before 3000 tokens
        status, answer, _ = raw(url, "POST", "/v1/complete", json.dumps({"model": MODEL, "prompt": "Hi",
                                                                         "maximum_tokens": 3}).encode())
        assert status == 200 and answer["num_tokens_generated"] == 3  # and the server goes on


def test_a_slow_reader_only_slows_itself(client, engine):
    with app_server(client, TOKEN) as url:
        connection, response = open_stream(url, "/v1/complete", LONG)  # then reads nothing
        status, answer, _ = raw(url, "POST", "/v1/complete", json.dumps({"model": MODEL, "prompt": "Hi",
                                                                         "maximum_tokens": 20}).encode())
        assert status == 200 and answer["num_tokens_generated"] == 20  # served beside it
        assert engine.stats()["requests_active"] == 1  # the unread stream waits, neither dropped nor ended
        assert response.read(1) == b"{"  # and goes on where it was
        hang_up(connection)
        wait_until_idle(engine)


def mixed_requests(count):
    prompts = ["The sea", "Once upon a time", "def fib(n):", "My favourite food is", "In 1905, Einstein"]
    requests = []
    for i in range(count):
        body = {"model": MODEL, "prompt": prompts[i % len(prompts)], "maximum_tokens": 6 + i % 11, "stream": True}
        if i % 3:
            body.update(temperature=0.9, seed=i, top_p=0.95)
        if i % 4 == 1:
            body.update(n=2)
        if i % 5 == 2:
            body.update(stop_sequences=["\n"], presence_penalty=0.4)
        requests.append(body)
    return requests


async def streamed(http, url, body):
    """Every event of one streaming request, as it arrived."""
    events = []
    async with http.stream("POST", f"{url}/v1/complete", json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line:
                events.append(json.loads(line.removeprefix("data: ")))
    return events


def test_32_concurrent_streaming_clients_each_get_what_they_get_alone(client, engine):
    requests = mixed_requests(32)

    async def run():
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=120, headers=headers,
                                     limits=httpx.Limits(max_connections=64)) as http:
            alone = [await streamed(http, url, body) for body in requests]
            together = await asyncio.gather(*(streamed(http, url, body) for body in requests))
            return alone, together

    def texts(events):  # per candidate: its joined text and finish reason
        joined = {}
        for event in events:
            if event["type"] == "stream_chunk":
                joined.setdefault(event["index"], [""])[0] += event["completion"]
            elif event["type"] == "stream_summary":
                joined.setdefault(event["index"], [""]).append(event["finish_reason"])
        return joined

    with app_server(client, TOKEN) as url:
        alone, together = asyncio.run(run())
    assert engine.model.max_sequences < 32 + 8  # some of them waited for a free sequence
    for body, one, many in zip(requests, alone, together):
        assert texts(many) == texts(one), body
        assert many[-1] == one[-1]  # the same token counts
    wait_until_idle(engine)


def test_a_full_queue_answers_503_with_retry_after(smollm2_path):
    backend = LocalBackend(max_sequences=1, max_waiting=1, context_length=4096)
    with Client(backend=backend) as small, app_server(small, TOKEN) as url:
        first = open_stream(url, "/v1/complete", LONG)  # runs
        second = open_stream(url, "/v1/complete", LONG, first_event=False)  # waits for the one sequence
        status, answer, headers = raw(url, "POST", "/v1/complete", json.dumps(LONG).encode())
        assert status == 503 and answer["code"] == "QUEUE_FULL" and headers["retry-after"] == "1"
        status, answer, _ = raw(url, "POST", "/v1/completions",
                                json.dumps({"model": MODEL, "prompt": "x"}).encode())
        assert status == 503 and answer["error"]["code"] == "QUEUE_FULL"  # OpenAI's error object there
        with pytest.raises(aleph.BusyError):
            aleph.Client(token=TOKEN, host=url, total_retries=0).complete(
                aleph.CompletionRequest(prompt=aleph.Prompt.from_text("x"), maximum_tokens=1), model=MODEL)
        for connection, _ in (first, second):
            hang_up(connection)
        wait_until_idle(backend.engine(MODEL))
        status, answer, _ = raw(url, "POST", "/v1/complete", json.dumps({"model": MODEL, "prompt": "Hi",
                                                                         "maximum_tokens": 2}).encode())
        assert status == 200 and answer["num_tokens_generated"] == 2
