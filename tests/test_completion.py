"""Completions on the real default model through the real llama.cpp."""

import re

import pytest
from llama_cpp import Llama

from edgecomplete import Client, CompletionRequest, Prompt, Text
from edgecomplete.engine import TokenSampled, on_llama_thread
from edgecomplete.plan import plan_completion

from .conftest import MODEL

STORY = "Once upon a time, in a small village by the sea, there lived"
SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"


def chat(question):
    """A prompt in SmolLM2's chat format (sent with disable_optimizations: its final newline matters)."""
    return SYSTEM + f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def complete(client, text=STORY, **fields):
    return client.complete(CompletionRequest(prompt=Prompt.from_text(text), **fields), model=MODEL)


def test_greedy_is_deterministic(client):
    first = complete(client, maximum_tokens=40)
    second = complete(client, maximum_tokens=40)
    assert first.completions[0].completion == second.completions[0].completion
    assert first.completions[0].completion.strip()


@pytest.mark.parametrize("flash_attention", [True, False])
def test_greedy_equals_llama_cpp_greedy(smollm2_path, flash_attention):
    with Client(flash_attention=flash_attention) as ours:
        text = complete(ours, maximum_tokens=48).completions[0].completion
    theirs = on_llama_thread(lambda: Llama(
        str(smollm2_path), n_ctx=1024, n_threads=2, flash_attn=flash_attention, verbose=False
    ).create_completion(STORY, max_tokens=48, temperature=0.0, repeat_penalty=1.0))
    assert text == theirs["choices"][0]["text"]


def test_same_seed_same_text_different_seed_different_text(client):
    texts = [complete(client, maximum_tokens=30, temperature=1.0, seed=seed).completions[0].completion
             for seed in (1, 1, 2, 3)]
    assert texts[0] == texts[1]
    assert len({texts[0], texts[2], texts[3]}) == 3


def test_maximum_tokens_is_honoured(client):
    response = complete(client, maximum_tokens=7, temperature=1.0, top_k=40, seed=4)
    assert response.num_tokens_generated == 7
    assert response.completions[0].finish_reason == "maximum_tokens"


def test_maximum_tokens_none_generates_to_end_of_text(client):
    response = complete(client, "Write one short sentence about cats.", maximum_tokens=None, minimum_tokens=0)
    result = response.completions[0]
    assert result.finish_reason in ("end_of_text", "maximum_tokens")
    assert response.num_tokens_generated > 0


def test_end_of_text_finish_reason_and_special_tokens(client):
    result = complete(client, chat("What is 2+2?"), maximum_tokens=60, raw_completion=True,
                      disable_optimizations=True).completions[0]
    assert result.finish_reason == "end_of_text"
    assert "<|im_end|>" not in result.completion
    assert result.raw_completion == result.completion + "<|im_end|>"


def greedy_pieces(engine, text, maximum_tokens):
    plan = plan_completion(CompletionRequest(prompt=Prompt.from_text(text), maximum_tokens=maximum_tokens), engine.model)
    tokens = [e.token for e in engine.generate(plan) if isinstance(e, TokenSampled)]
    return [engine.model.vocabulary.piece(t).decode("utf-8", "replace") for t in tokens]


def test_stop_sequence_spanning_tokens(client, engine):
    pieces = greedy_pieces(engine, STORY, 40)
    text = "".join(pieces)
    # A stop made of the end of one token and the start of the next, that does not occur earlier.
    for k in range(3, len(pieces) - 1):
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


def repetition(text):
    words = re.findall(r"\w+", text.lower())
    return len(words) - len(set(words)), len(words)


def test_presence_and_frequency_penalties_reduce_repetition(client):
    prompt = "apple banana apple banana apple banana apple banana apple banana apple"
    plain = complete(client, prompt, maximum_tokens=40).completions[0].completion
    penalised = complete(client, prompt, maximum_tokens=40, presence_penalty=1.0, frequency_penalty=1.0,
                         repetition_penalties_include_prompt=True).completions[0].completion
    repeated_plain, _ = repetition(plain)
    repeated_penalised, _ = repetition(penalised)
    assert repeated_penalised < repeated_plain, (plain, penalised)


def test_multiplicative_penalties_reduce_repetition(client):
    prompt = "red blue red blue red blue red blue red blue red"
    plain = complete(client, prompt, maximum_tokens=40).completions[0].completion
    penalised = complete(client, prompt, maximum_tokens=40, presence_penalty=1.5, frequency_penalty=1.0,
                         use_multiplicative_presence_penalty=True, use_multiplicative_frequency_penalty=True,
                         repetition_penalties_include_prompt=True).completions[0].completion
    assert repetition(penalised)[0] < repetition(plain)[0], (plain, penalised)


def test_n_candidates_share_the_prompt_and_count_tokens(client):
    response = complete(client, maximum_tokens=12, temperature=1.0, seed=9, n=3)
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


def test_minimum_tokens_delays_end_of_text(client):
    prompt = chat("What is 2+2?")
    short = complete(client, prompt, maximum_tokens=60, disable_optimizations=True)
    assert short.completions[0].finish_reason == "end_of_text"
    longer = complete(client, prompt, maximum_tokens=60, minimum_tokens=short.num_tokens_generated + 5,
                      disable_optimizations=True)
    assert longer.num_tokens_generated >= short.num_tokens_generated + 5


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


def test_the_seed_usage_example_runs_with_only_import_and_model_changed(capsys, smollm2_path):
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
    assert len(response.completions) == 3
    assert all(c.finish_reason in ("maximum_tokens", "end_of_text", "stop_sequence_reached")
               for c in response.completions)
    assert all("\n\n" not in c.completion for c in response.completions)
    assert printed.count("Finish reason:") == 3
    assert len(printed.splitlines()[0].strip()) > 0
