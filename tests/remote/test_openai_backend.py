"""The openai backend against two real OpenAI-compatible servers on loopback — llama.cpp's
llama-server (/v1 routes) and edgecomplete's own `serve` — and, where neither can show it, vLLM's
documented protocol as unit tests of the mapping (vLLM itself cannot run on these machines)."""

import pytest

from edgecomplete import Client, CompletionRequest, InvalidRequest, Prompt
from edgecomplete.remote.openai import OpenAIBackend, _finish, _log_probs
from edgecomplete.stream import fold

from ..conftest import MODEL
from ..server.conftest import TOKEN
from .test_llama_server_backend import LOG_PROB_TOLERANCE, PROMPTS


@pytest.fixture(scope="module", params=["llama-server /v1", "edgecomplete serve"])
def remote(request, llama_server_url, serve_url):
    host = llama_server_url if request.param == "llama-server /v1" else serve_url
    with Client(host=host, backend="openai", token=TOKEN) as client:
        yield client


def request(prompt=PROMPTS[0], **fields):
    return CompletionRequest(prompt=Prompt.from_text(prompt), **{"maximum_tokens": 20, **fields})


@pytest.mark.parametrize("prompt", PROMPTS[:3])
def test_greedy_completions_are_the_local_engines(remote, local, prompt):
    there = remote.complete(request(prompt), MODEL).completions[0]
    here = local.complete(request(prompt), MODEL).completions[0]
    assert (there.completion, there.finish_reason) == (here.completion, here.finish_reason)


def test_log_probs_and_tokens(remote, local):
    there = remote.complete(request(log_probs=2, tokens=True, maximum_tokens=8), MODEL).completions[0]
    here = local.complete(request(log_probs=2, tokens=True, maximum_tokens=8), MODEL).completions[0]
    assert there.completion_tokens == here.completion_tokens
    for theirs, ours in zip(there.log_probs, here.log_probs):
        assert list(theirs)[0] == list(ours)[0]
        assert all(abs(theirs[t] - ours[t]) < LOG_PROB_TOLERANCE for t in set(theirs) & set(ours))


def test_candidates_best_of_and_streams(remote):
    sampled = request(PROMPTS[1], temperature=0.9, seed=21, n=2, maximum_tokens=10)
    whole = remote.complete(sampled, MODEL)
    assert whole == remote.complete(sampled, MODEL) and len(whole.completions) == 2
    assert fold(remote.complete_with_streaming(sampled, MODEL)) == whole
    best = remote.complete(request(PROMPTS[1], temperature=0.9, seed=21, best_of=3, maximum_tokens=10), MODEL)
    assert len(best.completions) == 1 and best.completions[0].log_probs is None
    greedy = remote.complete(request(n=3, maximum_tokens=6), MODEL)  # asked once, copied
    assert len({c.completion for c in greedy.completions}) == 1 and len(greedy.completions) == 3


def test_refusals_name_the_field_and_the_backend(remote):
    for fields, field in (({"echo": True}, "echo"), ({"maximum_tokens": None}, "maximum_tokens"),
                          ({"minimum_tokens": 2}, "minimum_tokens"), ({"raw_completion": True}, "raw_completion"),
                          ({"repetition_penalties_include_prompt": True}, "repetition_penalties_include_prompt")):
        with pytest.raises(InvalidRequest, match="openai backend") as refused:
            remote.complete(request(**fields), MODEL)
        assert refused.value.field == field


# ---- vLLM's protocol, as unit tests of the mapping (no vLLM here) ----------------------------------

@pytest.fixture
def vllm():
    backend = OpenAIBackend("http://vllm.invalid:8000")
    yield backend
    backend.close()


def body(backend, **fields):
    r = CompletionRequest(prompt=Prompt.from_text("Hi"), **{"maximum_tokens": 16, **fields})
    return backend._body(backend._ask(r), "m", False)


def test_vllm_top_p_zero_means_off_and_is_sent_as_one(vllm):
    assert body(vllm, temperature=0.7)["top_p"] == 1.0 and body(vllm, temperature=0.7, top_p=0.5)["top_p"] == 0.5


def test_vllm_refuses_n_above_one_at_temperature_zero_so_greedy_candidates_are_asked_once(vllm):
    ask = vllm._ask(CompletionRequest(prompt=Prompt.from_text("Hi"), maximum_tokens=4, n=3))
    assert (ask.candidates, ask.copies) == (1, 3) and body(vllm, n=3)["n"] == 1


def test_vllm_dropped_best_of_so_it_is_emulated_with_n_and_log_probs(vllm):
    sent = body(vllm, best_of=4, temperature=1.0)
    assert "best_of" not in sent and sent["n"] == 4 and sent["logprobs"] == 1


def test_vllm_defaults_max_tokens_to_16_so_it_is_always_sent(vllm):
    assert body(vllm, maximum_tokens=300)["max_tokens"] == 300
    with pytest.raises(InvalidRequest, match="maximum_tokens: the openai backend needs it"):
        body(vllm, maximum_tokens=None)


def test_vllm_legacy_log_probs_and_stop_reasons_are_read():
    legacy = {"tokens": [" a", " b"], "token_logprobs": [-0.5, -1.5],
              "top_logprobs": [{" a": -0.5, " c": -1.0, " d": -2.0}, {" e": -0.2, " b": -1.5}], "text_offset": [0, 2]}
    tokens, entries, chosen = _log_probs(legacy, 1)
    assert tokens == [" a", " b"] and chosen == [-0.5, -1.5]
    # the chosen token first, then the top 1 (the chosen one itself where it is the most likely)
    assert entries == [{" a": -0.5}, {" b": -1.5, " e": -0.2}] and list(entries[1]) == [" b", " e"]
    assert _finish({"finish_reason": "stop", "stop_reason": "\n\n"}) == "stop_sequence_reached"
    assert _finish({"finish_reason": "stop", "stop_reason": None}) == "end_of_text"
    assert _finish({"finish_reason": "length"}) == "maximum_tokens"
