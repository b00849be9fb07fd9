"""Completions on the real default model through the real llama.cpp."""

import numpy as np
import pytest

import edgecomplete
from edgecomplete import Client, CompletionRequest, Prompt, Text
from edgecomplete.engine import TokenSampled, on_llama_thread
from edgecomplete.plan import plan_completion

from ..core import reference
from ..conftest import MODEL, reference_llama
from .forced import FORCE, second_token

STORY = "Once upon a time, in a small village by the sea, there lived"
SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"


def chat(question):
    """A prompt in SmolLM2's chat format (sent with disable_optimizations: its final newline matters)."""
    return SYSTEM + f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def complete(client, text=STORY, **fields):
    return client.complete(CompletionRequest(prompt=Prompt.from_text(text), **fields), model=MODEL)


def test_greedy_is_deterministic(client):
    first = complete(client, maximum_tokens=40, minimum_tokens=40)
    second = complete(client, maximum_tokens=40, minimum_tokens=40)
    assert first.completions[0].completion == second.completions[0].completion
    assert first.num_tokens_generated == second.num_tokens_generated == 40
    assert first.completions[0].completion


@pytest.mark.parametrize("flash_attention", [True, False])
def test_greedy_equals_llama_cpp_greedy(smollm2_path, flash_attention):
    with Client(flash_attention=flash_attention) as ours:
        text = complete(ours, maximum_tokens=48).completions[0].completion
    llama = reference_llama(smollm2_path, n_ctx=1024, flash_attn=flash_attention)
    theirs = on_llama_thread(lambda: llama.create_completion(STORY, max_tokens=48, temperature=0.0, repeat_penalty=1.0))
    assert text == theirs["choices"][0]["text"]


def test_same_seed_same_text_different_seed_different_text(client):
    texts = [complete(client, maximum_tokens=30, temperature=1.0, seed=seed).completions[0].completion
             for seed in (1, 1, 2, 3)]
    assert texts[0] == texts[1]
    assert len({texts[0], texts[2], texts[3]}) == 3


def test_maximum_tokens_is_honoured(client):
    response = complete(client, maximum_tokens=7, minimum_tokens=7, temperature=1.0, top_k=40, seed=4)
    assert response.num_tokens_generated == 7
    assert response.completions[0].finish_reason == "maximum_tokens"


def test_maximum_tokens_none_generates_to_end_of_text_or_to_the_end_of_the_context(smollm2_path):
    # <|im_end|> is raised by FORCE, so the reply ends at the first step minimum_tokens allows.
    prompt = "Write one short sentence about cats."
    with Client(context_length=256) as small:
        model = small.backend.engine(MODEL).model
        (end,) = model.tokenize("<|im_end|>")
        ended = complete(small, prompt, maximum_tokens=None, minimum_tokens=3, logit_bias={end: FORCE})
        assert (ended.completions[0].finish_reason, ended.num_tokens_generated) == ("end_of_text", 4)
        room = model.context_length - len(model.tokenize(prompt))
        full = complete(small, prompt, maximum_tokens=None, minimum_tokens=room, logit_bias={end: FORCE})
        assert (full.completions[0].finish_reason, full.num_tokens_generated) == ("maximum_tokens", room)


def test_end_of_text_finish_reason_and_special_tokens(client, engine):
    # A forced reply: "4" (end of text is masked for one token), then <|im_end|>.
    (four,), (end,) = engine.model.tokenize("4"), engine.model.tokenize("<|im_end|>")
    result = complete(client, chat("What is 2+2?"), maximum_tokens=60, minimum_tokens=1, raw_completion=True,
                      disable_optimizations=True, logit_bias={four: FORCE / 2, end: FORCE}).completions[0]
    assert result.finish_reason == "end_of_text"
    assert result.completion == "4"
    assert result.raw_completion == "4<|im_end|>"


def greedy_pieces(engine, text, maximum_tokens):
    plan = plan_completion(CompletionRequest(prompt=Prompt.from_text(text), maximum_tokens=maximum_tokens), engine.model)
    tokens = [e.token for e in engine.generate(plan) if isinstance(e, TokenSampled)]
    return [engine.model.vocabulary.piece(t).decode("utf-8", "replace") for t in tokens]


def test_stop_sequence_spanning_tokens(client, engine):
    pieces = greedy_pieces(engine, STORY, 40)
    text = "".join(pieces)
    # A stop made of the end of one token and the start of the next, that does not occur earlier,
    # before any character split across tokens (whose pieces alone do not spell the text).
    whole = next((k for k, piece in enumerate(pieces) if "\ufffd" in piece), len(pieces))
    for k in range(3, whole - 1):
        left, right = pieces[k].rstrip(), pieces[k + 1]
        if len(left) >= 2 and len(right.strip()) >= 2:
            stop = left[-2:] + right[: len(right) - len(right.lstrip()) + 2]
            start = sum(len(p) for p in pieces[:k]) + len(left) - 2
            if text.find(stop) == start:
                break
    else:
        pytest.fail(f"no token boundary to test in {pieces}")
    result = complete(client, maximum_tokens=40, stop_sequences=["never-generated", stop], raw_completion=True)
    completion = result.completions[0]
    assert completion.finish_reason == "stop_sequence_reached"
    assert completion.completion == text[:start]
    assert stop not in completion.completion
    assert completion.raw_completion.startswith(text[:start] + stop)


@pytest.mark.parametrize("include_prompt", [True, False], ids=["prompt_and_completion", "completion_only"])
@pytest.mark.parametrize("multiplicative", [False, True], ids=["additive", "multiplicative"])
def test_presence_and_frequency_penalties_lower_a_repeated_token_by_exactly_the_penalty(
    engine, sampled_rows, multiplicative, include_prompt
):
    # " banana" (five times in the prompt) is forced as the first token. At the second step it
    # meets " cherry" (never seen), biased to land just above, then just below, where the
    # penalties should have put " banana": the one picked says whether they did, on any CPU.
    prompt = "apple banana apple banana apple banana apple banana apple banana apple"
    (banana,), (cherry,) = engine.model.tokenize(" banana"), engine.model.tokenize(" cherry")
    presence, frequency = (1.5, 1.0) if multiplicative else (1.0, 1.0)
    count = 1 + (engine.model.tokenize(prompt).count(banana) if include_prompt else 0)
    # A division shrinks the bias too: scale it so the penalised banana still towers over the rest.
    force = FORCE * ((1 + presence) * (1 + frequency) ** count if multiplicative else 1)
    _, row = second_token(engine, sampled_rows, prompt, banana, {banana: force})  # the raw row, unpenalised
    biased = row.copy()
    biased[banana] += np.float32(force)
    penalised = reference.penalties(biased, {banana: count}, presence, frequency, multiplicative,
                                    multiplicative)[banana]
    assert biased[banana] - penalised > 1.0  # a move the probe below cannot miss
    penalties = dict(presence_penalty=presence, frequency_penalty=frequency,
                     use_multiplicative_presence_penalty=multiplicative,
                     use_multiplicative_frequency_penalty=multiplicative,
                     repetition_penalties_include_prompt=include_prompt)
    for margin, winner in ((0.25, cherry), (-0.25, banana)):
        rival = float(penalised) + margin - float(row[cherry])
        chosen, _ = second_token(engine, sampled_rows, prompt, banana, {banana: force, cherry: rival}, **penalties)
        assert chosen == winner, f"cherry placed {margin:+} from the penalised banana, {chosen} won"


def test_n_candidates_share_the_prompt_and_count_tokens(client):
    response = complete(client, maximum_tokens=12, minimum_tokens=12, temperature=1.0, seed=9, n=3)
    assert len(response.completions) == 3
    prompt_tokens = complete(client, maximum_tokens=0).num_tokens_prompt_total
    assert response.num_tokens_prompt_total == 3 * prompt_tokens
    assert response.num_tokens_generated == 36
    assert len({c.completion for c in response.completions}) == 3


def test_maximum_tokens_zero_generates_nothing(client):
    response = complete(client, maximum_tokens=0)
    assert response.num_tokens_generated == 0
    assert response.completions[0].completion == ""
    assert response.completions[0].finish_reason == "maximum_tokens"


def test_token_prompt_equals_text_prompt(client, engine):
    ids = engine.model.tokenize(STORY)
    by_text = complete(client, maximum_tokens=10)
    by_tokens = client.complete(CompletionRequest(prompt=Prompt.from_tokens(ids), maximum_tokens=10), model=MODEL)
    assert by_tokens.completions[0].completion == by_text.completions[0].completion
    assert by_tokens.num_tokens_prompt_total == len(ids)


def test_prompt_optimizations(client):
    prompt = Prompt([Text.from_text("  Once upon a time,"), Text.from_text(" there lived   ")])
    optimized = client.complete(CompletionRequest(prompt=prompt, maximum_tokens=5), model=MODEL)
    assert optimized.optimized_prompt == Prompt([Text.from_text("Once upon a time, there lived")])
    untouched = client.complete(
        CompletionRequest(prompt=prompt, maximum_tokens=5, disable_optimizations=True), model=MODEL
    )
    assert untouched.optimized_prompt is None
    unchanged = client.complete(CompletionRequest(prompt=Prompt.from_text("Hello"), maximum_tokens=1), model=MODEL)
    assert unchanged.optimized_prompt is None


def test_logit_bias_forces_a_token(client, engine):
    token = engine.model.tokenize(" banana")[0]
    response = complete(client, maximum_tokens=3, logit_bias={token: 100.0})
    assert response.completions[0].completion == " banana" * 3


def test_minimum_tokens_delays_end_of_text(client, engine):
    # <|im_end|> raised by FORCE: the reply ends at the first step where end of text is allowed.
    (end,) = engine.model.tokenize("<|im_end|>")
    fields = dict(maximum_tokens=60, disable_optimizations=True, logit_bias={end: FORCE})
    at_once = complete(client, chat("What is 2+2?"), **fields)
    assert (at_once.completions[0].finish_reason, at_once.num_tokens_generated) == ("end_of_text", 1)
    later = complete(client, chat("What is 2+2?"), minimum_tokens=5, **fields)
    assert (later.completions[0].finish_reason, later.num_tokens_generated) == ("end_of_text", 6)


def test_penalty_exceptions_keep_stop_tokens_unpenalised(engine):
    request = CompletionRequest(
        prompt=Prompt.from_text("a b"), maximum_tokens=5, presence_penalty=1.0,
        penalty_exceptions=["\n-"], stop_sequences=["END"], penalty_bias="one two",
    )
    plan = plan_completion(request, engine.model)
    exceptions = set(plan.samplers[0].penalty_exceptions)
    tokenize = engine.model.tokenize
    assert set(tokenize("\n-")) | set(tokenize(" \n-")) | set(tokenize("END")) == exceptions
    assert plan.samplers[0].penalty_context == tuple(tokenize("one two"))
    no_stops = plan_completion(
        CompletionRequest(prompt=Prompt.from_text("a b"), stop_sequences=["END"],
                          penalty_exceptions_include_stop_sequences=False), engine.model)
    assert no_stops.samplers[0].penalty_exceptions == ()


def test_the_seed_usage_example_runs_with_only_import_and_model_changed(capsys, monkeypatch, smollm2_path):
    # The texts are sampled with fresh seeds: compare what is printed with what was returned.
    responses = []
    original = edgecomplete.Client.complete

    def recording(self, *args, **kwargs):
        responses.append(original(self, *args, **kwargs))
        return responses[-1]

    monkeypatch.setattr(edgecomplete.Client, "complete", recording)

    # From the seed's usage examples; only the import line and the model name differ.
    from edgecomplete import Client, CompletionRequest, Prompt

    client = Client(token="your-api-token")

    # Simple completion
    request = CompletionRequest(
        prompt=Prompt.from_text("The future of AI is"),
        maximum_tokens=50,
        temperature=0.7
    )
    response = client.complete(request, model="smollm2-135m")
    print(response.completions[0].completion)

    # Advanced completion with multiple results
    request = CompletionRequest(
        prompt=Prompt.from_text("Write a creative story about:"),
        maximum_tokens=200,
        temperature=0.8,
        top_p=0.9,
        n=3,  # Generate 3 completions
        stop_sequences=["\n\n", "THE END"],
        presence_penalty=0.1,
        frequency_penalty=0.1
    )
    response = client.complete(request, model="smollm2-135m")

    for i, completion in enumerate(response.completions):
        print(f"Completion {i+1}: {completion.completion}")
        print(f"Finish reason: {completion.finish_reason}")

    client.close()
    printed = capsys.readouterr().out
    simple, advanced = responses
    assert advanced is response and len(response.completions) == 3
    assert all(c.finish_reason in ("maximum_tokens", "end_of_text", "stop_sequence_reached")
               for c in response.completions)
    assert all("\n\n" not in c.completion for c in response.completions)
    assert printed == simple.completions[0].completion + "\n" + "".join(
        f"Completion {i + 1}: {c.completion}\nFinish reason: {c.finish_reason}\n"
        for i, c in enumerate(response.completions))
