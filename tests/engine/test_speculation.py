"""Speculative decoding (drafts from the request's own text) on the real model: the text, tokens,
log-probs and stream items are those of decoding without it, with every feature, alone and
concurrently; the KV cells of rejected drafts go; maximum_tokens holds.

Exact equality is what llama.cpp gives here: a batch row computed as alone (the engine's probe,
`speculation_rows`). Over an f16 KV cache it also needs at most 256 cells in use (llama.cpp pads
the span it attends over to a multiple of 256, and from 512 on its CPU attention splits a single
row's span across threads); the default bf16 cache does not, but these clients still keep no
prefix cache and short requests, so that the tests hold over either cache.
"""

from concurrent.futures import ThreadPoolExecutor

import llama_cpp
import pytest

from edgecomplete import Client, CompletionRequest, Prompt
from edgecomplete.engine import on_llama_thread
from edgecomplete.engine.drafts import MAX_DRAFT
from edgecomplete.engine.llama import PROBED_ROWS

from ..conftest import MODEL, verify_every_draft

RECORD = "name: Ada Lovelace\nborn: 10 December 1815\nknown for: the first computer program\n"
TASKS = {
    "code": "def area_square(side):\n    return side * side\n\n\ndef area_rectangle(width, height):\n"
            "    return width * height\n\n\ndef area_triangle(base, height):\n    return base * height / 2\n\n\n"
            "def area_",
    "extraction": f"Record:\n{RECORD}\nThe same record, copied exactly:\n",
    "rewrite": "Text: The harbour town grew rich on the salt trade, and its merchants built tall houses "
               "along the river.\nThe same text, word for word: The harbour town grew rich on the",
}


@pytest.fixture(scope="module")
def clients(smollm2_path):
    with Client(prefix_cache=False, speculation=False) as plain, Client(prefix_cache=False) as speculative:
        yield plain, speculative


def request(task: str, **fields) -> CompletionRequest:
    fields.setdefault("maximum_tokens", 64)
    return CompletionRequest(prompt=Prompt.from_text(TASKS[task]), **fields)


def both(clients, req):
    plain, speculative = clients
    return plain.complete(req, MODEL), speculative.complete(req, MODEL)


def needs_drafts(client) -> None:
    """Skip where the probe turned speculation off: a CPU whose llama.cpp kernels round a batch
    row of this model otherwise than a row alone (16 rows batch exactly on the build machine)."""
    if client.backend.engine(MODEL).speculation_rows == 1:
        pytest.skip("this CPU's llama.cpp rounds batched rows of this model otherwise: no drafts here")


def test_the_probe_bounds_the_rows_of_a_step(clients):
    plain, speculative = clients
    assert 1 <= speculative.backend.engine(MODEL).speculation_rows <= 1 + MAX_DRAFT
    assert plain.backend.engine(MODEL).speculation_rows == 1


def test_the_probe_times_what_it_decodes_for_the_policy(smollm2_path):
    """The policy's costs start from the probe's own decodes: one row, and each count it tried up
    to the most rows."""
    with Client(prefix_cache=False) as client:
        engine = client.backend.engine(MODEL)
        needs_drafts(client)
        seconds = engine.draft_policy.seconds
        rows = engine.speculation_rows
        assert set(seconds) == {1, rows, *(n for n in PROBED_ROWS if n < rows)}
        assert all(0 < s < 10 for s in seconds.values())  # timings: no order asserted (a GPU may batch for free)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_greedy_text_tokens_and_log_probs_are_those_without_speculation(clients, task):
    ours, theirs = both(clients, request(task, log_probs=3, tokens=True, minimum_tokens=64))
    assert theirs.completions == ours.completions
    assert ours.decode_stats.drafted_tokens == 0 and ours.decode_stats.decode_steps == 63
    stats = theirs.decode_stats
    assert stats.decode_steps + stats.accepted_drafts == 63  # every token but the first took a step or was a draft


def test_drafts_are_accepted_where_the_text_repeats(clients):
    needs_drafts(clients[1])
    stats = [both(clients, request(task, minimum_tokens=64))[1].decode_stats for task in TASKS]
    accepted = sum(s.accepted_drafts for s in stats)
    assert accepted > 0, stats
    assert sum(s.decode_steps for s in stats) < 3 * 63  # fewer decode steps than tokens


@pytest.mark.parametrize("fields", [
    dict(temperature=0.9, seed=11),
    dict(temperature=0.7, top_k=20, top_p=0.9, presence_penalty=0.4, frequency_penalty=0.3, seed=5),
    dict(sequence_penalty=0.5, sequence_penalty_min_length=3, repetition_penalties_include_prompt=True),
    dict(stop_sequences=["\n\n", "height"], log_probs=2),
    dict(n=2, best_of=3, temperature=1.0, seed=7),
    dict(n=3, temperature=0.8, seed=9, log_probs=1),
    dict(completion_bias_exclusion=[" width"], temperature=0.5, seed=3),
], ids=str)
def test_every_feature_gives_the_text_it_gives_without_speculation(clients, fields):
    for task in TASKS:
        ours, theirs = both(clients, request(task, maximum_tokens=40, **fields))
        assert theirs.completions == ours.completions, task
        assert theirs.num_tokens_generated == ours.num_tokens_generated


def test_stream_items_are_those_without_speculation(clients):
    plain, speculative = clients
    req = request("code", stop_sequences=["triangle"], tokens=True)
    ours = [item.to_json() for item in plain.complete_with_streaming(req, MODEL)]
    theirs = [item.to_json() for item in speculative.complete_with_streaming(req, MODEL)]
    assert theirs == ours


def test_concurrent_requests_with_drafts_are_each_as_alone(clients, monkeypatch):
    """Short prompts, as in test_streaming's concurrency test (over an f16 cache a long prompt
    evaluated beside other requests' rows rounds otherwise than alone; tests/hardening/test_stress
    covers long prompts over the default cache), so here the drafts come from completions that
    repeat themselves."""
    plain, speculative = clients
    needs_drafts(speculative)
    verify_every_draft(speculative.backend.engine(MODEL), monkeypatch)
    prompts = ["one two three one two three one", "A B C D A B C D A", "red blue red blue red",
               "def f(): return 1\ndef g(): return"]
    requests = [CompletionRequest(prompt=Prompt.from_text(p), maximum_tokens=32,
                                  **({"temperature": 0.8, "seed": i} if i % 2 else {}))
                for i, p in enumerate(prompts)]
    alone = [plain.complete(r, MODEL).completions for r in requests]
    with ThreadPoolExecutor(len(requests)) as pool:
        together = list(pool.map(lambda r: speculative.complete(r, MODEL), requests))
    assert [r.completions for r in together] == alone
    assert sum(r.decode_stats.accepted_drafts for r in together) > 0


def test_maximum_tokens_holds_with_drafts(clients):
    _, speculative = clients
    for maximum in (1, 2, 7, 30):
        response = speculative.complete(request("extraction", maximum_tokens=maximum, minimum_tokens=maximum), MODEL)
        assert response.num_tokens_generated == maximum


def test_rejected_drafts_leave_no_cells(clients):
    _, speculative = clients
    engine = speculative.backend.engine(MODEL)
    with ThreadPoolExecutor(2) as pool:  # beside another request: drafts are retired, not freed
        list(pool.map(lambda t: speculative.complete(request(t, temperature=1.0, seed=4), MODEL), ["code", "rewrite"]))
    speculative.complete(request("extraction", temperature=1.0, seed=4), MODEL)  # alone: freed
    stats = engine.stats()
    assert stats["sequence_ids_in_use"] == 0 and stats["sequences_with_cells"] == 0
    assert stats["retired_cells"] == 0  # compacted once idle


def test_a_kept_prefix_holds_exactly_its_tokens(client, engine, monkeypatch):
    """With the prefix cache, a finished request's cells are kept: with drafts rejected along the
    way, the kept sequence holds one cell per token, at positions 0 .. len - 1."""
    needs_drafts(client)
    verify_every_draft(engine, monkeypatch)  # CI once saw no draft in 20 seeds of the session's engine
    for seed in range(20):  # until a request had drafts rejected
        stats = client.complete(request("code", temperature=1.0, seed=seed, maximum_tokens=48), MODEL).decode_stats
        if stats.drafted_tokens > stats.accepted_drafts:
            break
    assert stats.drafted_tokens > stats.accepted_drafts

    def kept():
        slot = max(engine.kv.slots, key=lambda s: s.last_used)
        memory = llama_cpp.llama_get_memory(engine.model._context)
        return (len(slot.tokens), llama_cpp.llama_memory_seq_pos_min(memory, slot.seq_id),
                llama_cpp.llama_memory_seq_pos_max(memory, slot.seq_id))

    length, first, last = on_llama_thread(kept)
    assert (first, last) == (0, length - 1)
