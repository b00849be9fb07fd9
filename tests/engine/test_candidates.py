"""n, best_of, log_probs, echo, tokens, sequence penalty and completion bias on the real model.

Log-probabilities are checked against an independent teacher-forced pass: llama-cpp-python's
Llama with logits_all, and a NumPy log-softmax of its logits.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgecomplete import CompletionRequest, CompletionResponse, Prompt
from edgecomplete.engine import TokenSampled, on_llama_thread
from edgecomplete.plan import plan_completion

from ..core import reference
from ..conftest import MODEL, reference_llama
from .forced import FORCE, second_token

PROMPT = "The old lighthouse keeper looked at the sea and"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aleph-wire"


def request(text=PROMPT, **fields):
    return CompletionRequest(prompt=Prompt.from_text(text), **fields)


@pytest.fixture(scope="module")
def teacher(smollm2_path):
    """Log-softmax rows of an independent full pass over a token sequence."""
    llama = reference_llama(smollm2_path, n_ctx=2048, logits_all=True, flash_attn=True)

    def evaluate(tokens):
        llama.reset()
        llama.eval(tokens)
        return np.array(llama.scores[: len(tokens)], dtype=np.float64)

    def log_softmax_rows(tokens):
        scores = on_llama_thread(lambda: evaluate(tokens))
        m = scores.max(axis=1, keepdims=True)
        return scores - (m + np.log(np.exp(scores - m).sum(axis=1, keepdims=True)))

    return log_softmax_rows


def generated_tokens(engine, req):
    """Token ids per returned index, from the engine's own events (same seed, same run)."""
    plan = plan_completion(req, engine.model)
    tokens = {}
    for event in engine.generate(plan):
        if isinstance(event, TokenSampled):
            tokens.setdefault(event.index, []).append(event.token)
    return plan.prompt_tokens, tokens


def test_n_candidates_equal_single_runs_of_their_seeds(client):
    together = client.complete(request(maximum_tokens=20, temperature=1.0, n=3, seed=40), model=MODEL)
    again = client.complete(request(maximum_tokens=20, temperature=1.0, n=3, seed=40), model=MODEL)
    alone = [client.complete(request(maximum_tokens=20, temperature=1.0, seed=40 + i), model=MODEL)
             for i in range(3)]
    texts = [c.completion for c in together.completions]
    assert texts == [c.completion for c in again.completions]
    assert texts == [r.completions[0].completion for r in alone]
    assert len(set(texts)) == 3


def test_n_greedy_candidates_are_identical(client):
    response = client.complete(request(maximum_tokens=15, minimum_tokens=15, n=3), model=MODEL)
    assert len({c.completion for c in response.completions}) == 1
    assert response.num_tokens_generated == 45


def test_best_of_returns_the_best_n_by_teacher_forced_mean_log_prob(client, engine, teacher):
    everything = request(maximum_tokens=12, temperature=1.0, best_of=4, n=4, seed=7)
    prompt, tokens = generated_tokens(engine, everything)
    scores = []
    for index in range(4):
        rows = teacher(list(prompt) + tokens[index])
        positions = range(len(prompt) - 1, len(prompt) - 1 + len(tokens[index]))
        scores.append(np.mean([rows[p, t] for p, t in zip(positions, tokens[index])]))
    # Returned in descending score order (up to the teacher's rounding, which may swap a near-tie).
    assert all(a >= b - 1e-3 for a, b in zip(scores, scores[1:])), scores

    all_four = client.complete(everything, model=MODEL)
    best_two = client.complete(request(maximum_tokens=12, temperature=1.0, best_of=4, n=2, seed=7, log_probs=0),
                               model=MODEL)
    assert [c.completion for c in best_two.completions] == [c.completion for c in all_four.completions[:2]]
    for result, score in zip(best_two.completions, scores):
        ours = np.mean([next(iter(entry.values())) for entry in result.log_probs])
        assert abs(ours - score) < 1e-3
    assert best_two.num_tokens_generated == all_four.num_tokens_generated == sum(len(t) for t in tokens.values())
    assert best_two.num_tokens_prompt_total == 4 * len(prompt)


def test_log_probs_are_the_raw_distribution(client, engine, teacher):
    response = client.complete(request(maximum_tokens=10, temperature=0.9, top_k=20, seed=3, log_probs=3,
                                       tokens=True, presence_penalty=1.0), model=MODEL)
    result = response.completions[0]
    prompt, tokens = generated_tokens(engine, request(maximum_tokens=10, temperature=0.9, top_k=20, seed=3,
                                                      log_probs=3, tokens=True, presence_penalty=1.0))
    rows = teacher(list(prompt) + tokens[0])
    vocabulary = engine.model.vocabulary
    assert len(result.log_probs) == len(result.completion_tokens) == len(tokens[0])
    for k, (entry, token) in enumerate(zip(result.log_probs, tokens[0])):
        row = rows[len(prompt) - 1 + k]
        assert 3 <= len(entry) <= 4
        sampled = result.completion_tokens[k]
        assert sampled in entry
        assert abs(entry[sampled] - row[token]) < 1e-3  # raw: not after penalties or temperature
        order = np.argsort(-row, kind="stable")
        for alternative in order[:3]:
            if row[alternative] - row[order[3]] < 2e-3:
                continue  # level with the fourth: this CPU's rounding decides which one is reported
            key = vocabulary.piece(int(alternative), raw=True).decode("utf-8", "replace")
            assert abs(entry[key] - row[alternative]) < 1e-3


def test_echo_reports_the_prompt_with_teacher_forced_log_probs(client, engine, teacher):
    response = client.complete(request("The capital of France is", maximum_tokens=4, minimum_tokens=4, echo=True,
                                       log_probs=2, tokens=True), model=MODEL)
    result = response.completions[0]
    prompt = engine.model.tokenize("The capital of France is")
    rows = teacher(prompt)
    assert result.completion.startswith("The capital of France is")
    assert "".join(result.completion_tokens[: len(prompt)]) == "The capital of France is"
    assert result.log_probs[0] == {}
    for k in range(1, len(prompt)):
        entry = result.log_probs[k]
        key = result.completion_tokens[k]
        assert abs(entry[key] - rows[k - 1, prompt[k]]) < 1e-3
        assert 2 <= len(entry) <= 3
    assert len(result.completion_tokens) == len(prompt) + 4
    assert response.num_tokens_generated == 4


def fixture_response(name):
    interaction = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())["interactions"][0]
    body = interaction["request"]["body"]
    return json.loads(body), json.loads(interaction["response"]["body"]["string"])


def shape(value):
    """Field names and nesting, not values."""
    if isinstance(value, dict):
        return {key: shape(v) for key, v in value.items()} if not all(isinstance(v, float) for v in value.values()) \
            else "token->logprob"
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


@pytest.mark.parametrize("name", ["test_complete_with_echo", "test_num_tokens_generated_with_best_of",
                                  "test_num_tokens_prompt_total_with_best_of", "test_complete"])
def test_recorded_fixtures_have_the_same_shape_from_our_engine(client, engine, name):
    body, recorded = fixture_response(name)
    body["prompt"] = [item | {"controls": []} for item in body["prompt"]]  # no attention controls here
    # The recorded model did not end early; ours must not either, whatever this CPU's greedy text is.
    body["minimum_tokens"] = body["maximum_tokens"]
    for item in body["prompt"]:
        if item["type"] == "token_ids":  # ids of the recorded model; keep them inside our vocabulary
            item["data"] = [t % engine.model.vocab_size for t in item["data"]]
    ours = json.loads(json.dumps(client.complete(CompletionRequest.from_json(body), model=MODEL).to_json()))
    assert shape(ours["completions"]) == shape(recorded["completions"])
    assert set(ours) == set(recorded)
    # Counts follow the recorded rules: prompt tokens x candidates, every candidate's tokens.
    item = body["prompt"][0]
    prompt_tokens = len(item["data"]) if item["type"] == "token_ids" else len(engine.model.tokenize(item["data"]))
    assert ours["num_tokens_prompt_total"] == prompt_tokens * (body.get("best_of") or 1)
    assert ours["num_tokens_generated"] == recorded["num_tokens_generated"]
    assert CompletionResponse.from_json(ours).to_json() == ours


def test_completion_bias_inclusion_yields_exactly_one_option(client):
    for seed in range(8):
        result = client.complete(request("Is water wet? Answer:", maximum_tokens=10, temperature=1.0, seed=seed,
                                         completion_bias_inclusion=[" yes", " no"]), model=MODEL).completions[0]
        assert result.completion in (" yes", " no")
        assert result.finish_reason == "end_of_text"


def test_completion_bias_inclusion_first_token_only(client):
    # End of text is masked throughout, so the reply ends early only if the restriction outlives its token.
    result = client.complete(request("My favourite fruit is", maximum_tokens=6, minimum_tokens=6, tokens=True,
                                     completion_bias_inclusion=[" kiwi"],
                                     completion_bias_inclusion_first_token_only=True), model=MODEL)
    first = result.completions[0].completion_tokens[0]
    assert first and " kiwi".startswith(first)
    assert result.num_tokens_generated == 6  # only the first token was restricted


def test_completion_bias_exclusion_never_yields_the_excluded_string(client, engine):
    # Logit biases make " Paris" the certain reply, as one token and as " P" + "aris" (the first
    # token confined to " P", then "aris" raised above it); exclusion must block both.
    (paris,), (p,), (aris,) = (engine.model.tokenize(text) for text in (" Paris", " P", "aris"))
    whole = dict(logit_bias={paris: FORCE})
    split = dict(logit_bias={p: FORCE, aris: 2 * FORCE}, completion_bias_inclusion=[" P"],
                 completion_bias_inclusion_first_token_only=True)
    for forced in (whole, split):
        plain = client.complete(request("The capital of France is", maximum_tokens=3, **forced), model=MODEL)
        assert plain.completions[0].completion.startswith(" Paris")
        for seed in range(4):
            result = client.complete(request("The capital of France is", maximum_tokens=3, temperature=0.7,
                                             seed=seed, completion_bias_exclusion=[" Paris"], **forced),
                                     model=MODEL).completions[0]
            assert not result.completion.startswith(" Paris"), result.completion


@pytest.mark.parametrize("multiplicative", [False, True], ids=["additive", "multiplicative"])
def test_sequence_penalty_lowers_the_token_that_would_repeat_an_ngram(engine, sampled_rows, multiplicative):
    # After a forced " sat", " on" would repeat the prompt's "sat on" and " under" would not. Both
    # are raised far above " sat" and the rest; " under" lands just above, then just below, where
    # the penalty should have put " on": the one picked says whether it did, on any CPU.
    prompt = "the cat sat on the mat. the cat sat on the mat. the cat sat on the mat. the cat"
    (sat,), (on,), (under,) = (engine.model.tokenize(text) for text in (" sat", " on", " under"))
    penalty = 0.8 if multiplicative else 1.5
    level = 10 * FORCE  # a division by 1 + penalty still leaves " on" far above the forced " sat"
    _, row = second_token(engine, sampled_rows, prompt, sat, {on: level})  # the raw row, unpenalised
    biased = row.copy()
    biased[on] += np.float32(level)
    context = engine.model.tokenize(prompt) + [sat]
    penalised = reference.sequence_penalty(biased, context, [sat], penalty, multiplicative)[on]
    assert biased[on] - penalised > 1.0  # a move the probe below cannot miss
    fields = dict(sequence_penalty=penalty, use_multiplicative_sequence_penalty=multiplicative,
                  repetition_penalties_include_prompt=True)
    for margin, winner in ((0.25, under), (-0.25, on)):
        rival = float(penalised) + margin - float(row[under])
        chosen, _ = second_token(engine, sampled_rows, prompt, sat, {on: level, under: rival}, **fields)
        assert chosen == winner, f"under placed {margin:+} from the penalised on, {chosen} won"


def test_stop_cut_shortens_the_straddling_token(client, engine):
    (paris,) = engine.model.tokenize(" Paris")
    result = client.complete(request("The capital of France is", maximum_tokens=6, tokens=True, log_probs=0,
                                     logit_bias={paris: FORCE}, stop_sequences=["ari"]), model=MODEL).completions[0]
    assert result.finish_reason == "stop_sequence_reached"
    assert result.completion == " P"
    assert result.completion_tokens == [" P"]  # " Paris" cut before "ari"
    assert len(result.log_probs) == 1 and " P" in result.log_probs[0]


def test_requests_never_see_each_others_state(client):
    first = client.complete(request(maximum_tokens=10, temperature=1.0, seed=5, n=2), model=MODEL)
    client.complete(request("Completely different text about databases", maximum_tokens=30, n=4,
                            temperature=1.0, seed=9), model=MODEL)
    again = client.complete(request(maximum_tokens=10, temperature=1.0, seed=5, n=2), model=MODEL)
    assert [c.completion for c in first.completions] == [c.completion for c in again.completions]
