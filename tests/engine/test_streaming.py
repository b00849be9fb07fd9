"""Streaming, the async client, cancellation and concurrent requests, on the real model."""

import asyncio
import json
import time
from pathlib import Path

import pytest
import yaml

import edgecomplete
from edgecomplete import (
    AsyncClient,
    CompletionRequest,
    CompletionSummary,
    InvalidRequest,
    Prompt,
    StreamChunk,
    StreamSummary,
)
from edgecomplete.stream import fold

from ..conftest import MODEL

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aleph-wire"
STORY = "Once upon a time, in a small village by the sea, there lived"


def request(text=STORY, **fields):
    return CompletionRequest(prompt=Prompt.from_text(text), **fields)


def joined(items):
    texts = {}
    for item in items:
        if isinstance(item, StreamChunk):
            texts[item.index] = texts.get(item.index, "") + item.completion
    return texts


@pytest.mark.parametrize(
    "text,fields",
    [
        (STORY, dict(temperature=1.0, seed=1)),
        (STORY, dict(temperature=0.9, top_p=0.9, seed=2, stop_sequences=[" the", ".\n", "ing"])),
        ("Translate to Japanese: good morning, my friend =", dict(temperature=0.8, seed=3)),
        ("Emoji story: 🐱🐶🐭 then", dict(temperature=1.0, seed=4, stop_sequences=["🐶"])),
        ("中文：今天天气", dict(temperature=1.0, seed=5)),
        (STORY, dict(temperature=1.0, seed=6, n=3, stop_sequences=["a"], tokens=True, log_probs=2,
                     raw_completion=True)),
        (STORY, dict(temperature=0.7, seed=7, echo=True, log_probs=1)),
    ],
)
def test_stream_equals_non_stream(client, text, fields):
    req = request(text, maximum_tokens=40, **fields)
    items = list(client.complete_with_streaming(req, model=MODEL))
    response = client.complete(req, model=MODEL)
    assert fold(items) == response
    for index, completion in joined(items).items():
        assert completion == response.completions[index].completion
    assert isinstance(items[-1], CompletionSummary)
    summaries = [i for i in items if isinstance(i, StreamSummary)]
    assert sorted(s.index for s in summaries) == list(range(fields.get("n", 1)))
    for summary in summaries:  # each index's summary comes after all of its chunks
        position = items.index(summary)
        assert not any(isinstance(i, StreamChunk) and i.index == summary.index for i in items[position:])


def test_text_is_held_back_while_a_stop_could_still_cut_it(client):
    stops = [" the cat", " and then"]
    items = list(client.complete_with_streaming(request(maximum_tokens=60, temperature=1.0, seed=8,
                                                        stop_sequences=stops), model=MODEL))
    released = ""
    for item in items:
        if isinstance(item, StreamChunk) and not isinstance(items[items.index(item) + 1], StreamSummary):
            released += item.completion
            for stop in stops:  # no released text ends with the start of a stop sequence
                assert not any(released.endswith(stop[:k]) for k in range(1, len(stop))), (released, stop)
    chunks = [i.completion for i in items if isinstance(i, StreamChunk)]
    assert all("\ufffd" not in c for c in chunks)


def test_multibyte_characters_are_never_split(client, engine):
    # The reply is forced to characters no token holds whole: every way of spelling it in tokens
    # ends its first token inside the first character.
    reply = "鑫🦩很好"
    data, vocabulary = reply.encode(), engine.model.vocabulary
    first_tokens = [len(piece) for piece in map(vocabulary.piece, range(vocabulary.size))
                    if piece and data.startswith(piece)]
    assert max(first_tokens) < len(reply[0].encode())
    items = list(client.complete_with_streaming(request("中文：今天天气", maximum_tokens=40, temperature=1.0, seed=0,
                                                        completion_bias_inclusion=[reply]), model=MODEL))
    chunks = [i.completion for i in items if isinstance(i, StreamChunk)]
    assert "".join(chunks) == reply
    assert all("\ufffd" not in c for c in chunks)


def test_best_of_cannot_stream(client):
    with pytest.raises(InvalidRequest, match="best_of: cannot be streamed"):
        client.complete_with_streaming(request(best_of=2, maximum_tokens=5), model=MODEL)


def test_recorded_streaming_fixture_shapes(client):
    cassette = yaml.safe_load((FIXTURES / "test_can_use_streaming_support_with_async_client.yaml").read_text())
    interaction = cassette["interactions"][0]
    recorded = [json.loads(line[len("data: "):]) for line in interaction["response"]["body"]["string"].splitlines()
                if line.startswith("data: ")]
    body = dict(interaction["request"]["body"])
    body["minimum_tokens"] = body["maximum_tokens"]  # the recorded model did not end early; ours must not either
    items = list(client.complete_with_streaming(CompletionRequest.from_json(body), model=MODEL))
    ours = [json.loads(json.dumps(item.to_json())) for item in items]
    assert [e["type"] for e in ours if e["type"] != "stream_chunk"] == ["stream_summary", "completion_summary"]
    for kind in ("stream_chunk", "stream_summary", "completion_summary"):
        recorded_keys = {k for e in recorded if e["type"] == kind for k in e}
        our_keys = {k for e in ours if e["type"] == kind for k in e}
        assert our_keys == recorded_keys, kind
    assert ours[-1]["num_tokens_generated"] == recorded[-1]["num_tokens_generated"] == 7
    # Over HTTP, each event is one `data: {json}` line and a blank line: the events are plain JSON.
    assert all(isinstance(json.dumps(e), str) for e in ours)


def test_breaking_out_cancels_and_frees_the_cells(client, engine):
    stream = client.complete_with_streaming(request(maximum_tokens=500, minimum_tokens=500, n=3, temperature=1.0,
                                                    seed=10), model=MODEL)
    chunks = 0
    for item in stream:
        chunks += isinstance(item, StreamChunk)
        if chunks == 5:
            break
    stream.close()
    deadline = time.monotonic() + 5
    while engine.stats()["requests_active"] and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = engine.stats()
    assert (stats["requests_waiting"], stats["requests_active"], stats["sequence_ids_in_use"],
            stats["sequences_with_cells"], stats["retired_cells"]) == (0, 0, 0, 0, 0)
    after = client.complete(request(maximum_tokens=5, minimum_tokens=5), model=MODEL)
    assert after.num_tokens_generated == 5


def run(coroutine):
    return asyncio.run(coroutine)


def test_async_client_complete_and_stream(smollm2_path):
    async def main():
        async with AsyncClient(token="ignored") as client:
            response = await client.complete(request(maximum_tokens=12, temperature=1.0, seed=11), MODEL)
            items = [item async for item in client.complete_with_streaming(
                request(maximum_tokens=12, temperature=1.0, seed=11), MODEL)]
            return response, items

    response, items = run(main())
    assert fold(items) == response
    assert [type(i) for i in items[-2:]] == [StreamSummary, CompletionSummary]


def test_event_loop_keeps_running_while_generating(smollm2_path):
    async def main():
        async with AsyncClient() as client:
            await client.complete(request(maximum_tokens=1), MODEL)  # load the model first
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.005)
                    ticks += 1

            task = asyncio.create_task(ticker())
            start = time.monotonic()
            await client.complete(request(maximum_tokens=80, minimum_tokens=80), MODEL)
            elapsed = time.monotonic() - start
            task.cancel()
            return ticks, elapsed

    ticks, elapsed = run(main())
    assert ticks >= 0.5 * elapsed / 0.005  # the loop was free most of the time


def test_async_cancellation_by_aclose_and_by_task_cancel(smollm2_path):
    async def main():
        async with AsyncClient() as client:
            engine = client._client.backend.engine(MODEL)
            stream = client.complete_with_streaming(request(maximum_tokens=400, minimum_tokens=400), MODEL)
            async for item in stream:
                if isinstance(item, StreamChunk):
                    break
            await stream.aclose()

            async def consume():
                async for _ in client.complete_with_streaming(request(maximum_tokens=400, minimum_tokens=400), MODEL):
                    pass

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(200):
                if engine.stats()["requests_active"] == 0:
                    break
                await asyncio.sleep(0.01)
            stats = engine.stats()
            after = await client.complete(request(maximum_tokens=4, minimum_tokens=4), MODEL)
            return stats, after

    stats, after = run(main())
    assert stats["requests_active"] == stats["sequence_ids_in_use"] == stats["sequences_with_cells"] == 0
    assert after.num_tokens_generated == 4


def test_concurrent_requests_equal_their_runs_alone_and_share_batches(client):
    prompts = ["The best way to cook rice is", "My favourite planet is", "In 1850 the town of", "Dear diary, today",
               "The recipe needs", "Rain fell on the", "A good password is", "The train left the"]
    requests = [request(p, maximum_tokens=24, temperature=1.0, seed=100 + i) for i, p in enumerate(prompts)]
    alone = [client.complete(r, model=MODEL).completions[0].completion for r in requests]

    async def main():
        async with AsyncClient() as async_client:
            async def streamed(r):
                items = [item async for item in async_client.complete_with_streaming(r, MODEL)]
                return joined(items)[0]
            return await asyncio.gather(*(streamed(r) for r in requests))

    together = run(main())
    assert together == alone


def test_a_short_request_started_after_a_long_one_finishes_first(smollm2_path):
    async def main():
        async with AsyncClient() as client:
            await client.complete(request(maximum_tokens=1), MODEL)
            finished = []

            async def timed(name, r):
                await client.complete(r, MODEL)
                finished.append(name)

            long = asyncio.create_task(timed("long", request(maximum_tokens=300, minimum_tokens=300)))
            await asyncio.sleep(0.2)  # the long one is generating
            short = asyncio.create_task(timed("short", request("Hi", maximum_tokens=5)))
            await asyncio.gather(long, short)
            return finished

    assert run(main()) == ["short", "long"]


def test_the_seed_streaming_example_runs_with_only_import_and_model_changed(capsys, monkeypatch, smollm2_path):
    # The text is sampled with a fresh seed: compare what is printed with what was streamed.
    streamed = []
    original = edgecomplete.AsyncClient.complete_with_streaming

    def recording(self, *args, **kwargs):
        async def relay():
            async for item in original(self, *args, **kwargs):
                streamed.append(item)
                yield item
        return relay()

    monkeypatch.setattr(edgecomplete.AsyncClient, "complete_with_streaming", recording)

    # From the seed's usage examples; only the import line and the model name differ.
    from edgecomplete import AsyncClient, CompletionRequest, CompletionSummary, Prompt, StreamChunk, StreamSummary

    async def streaming_completion():
        async with AsyncClient(token="your-api-token") as client:
            request = CompletionRequest(
                prompt=Prompt.from_text("Write a long story about space exploration:"),
                maximum_tokens=500,
                temperature=0.7
            )

            async for item in client.complete_with_streaming(request, "smollm2-135m"):
                if isinstance(item, StreamChunk):
                    print(item.completion, end="", flush=True)
                elif isinstance(item, StreamSummary):
                    print(f"\nStream {item.index} finished: {item.finish_reason}")
                elif isinstance(item, CompletionSummary):
                    print(f"Total tokens generated: {item.num_tokens_generated}")

    asyncio.run(streaming_completion())
    printed = capsys.readouterr().out
    assert [type(i) for i in streamed[-2:]] == [StreamSummary, CompletionSummary]
    assert all(isinstance(i, StreamChunk) for i in streamed[:-2])
    summary, total = streamed[-2:]
    text = "".join(i.completion for i in streamed[:-2])
    assert printed == (f"{text}\nStream 0 finished: {summary.finish_reason}\n"
                       f"Total tokens generated: {total.num_tokens_generated}\n")
