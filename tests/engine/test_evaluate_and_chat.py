"""Client.evaluate and Client.chat (+ async and streaming twins): evaluate against an independent
llama.cpp pass over the same tokens; chat as the completion of the conversation in the model's
chat template, streamed or not."""

import asyncio

import numpy as np
import pytest

from edgecomplete import (AsyncClient, ChatRequest, ChatStreamChunk, CompletionRequest, EvaluationRequest,
                          FinishReason, InvalidRequest, Message, Prompt, Role, StreamOptions, Usage)
from edgecomplete.chat import sampling_fields
from edgecomplete.engine import on_llama_thread
from edgecomplete.plan import plan_completion

from ..conftest import MODEL, reference_llama

CASES = [
    ("The capital of France is", " Paris"),
    ("The capital of France is", " a banana split with cream"),
    ("def add(a, b):\n    return", " a + b"),
]


@pytest.fixture(scope="module")
def log_softmax(smollm2_path):
    """Log-softmax rows of an independent full pass over a token sequence (all logits kept)."""
    llama = reference_llama(smollm2_path, n_ctx=512, logits_all=True, flash_attn=True)

    def rows(tokens):
        def run():
            llama.reset()
            llama.eval(tokens)
            return np.array(llama.scores[: len(tokens)], dtype=np.float64)
        scores = on_llama_thread(run)
        top = scores.max(axis=1, keepdims=True)
        return scores - (top + np.log(np.exp(scores - top).sum(axis=1, keepdims=True)))

    return rows


@pytest.mark.parametrize("prompt,expected", CASES)
def test_evaluate_equals_an_independent_llama_cpp_pass(client, engine, log_softmax, prompt, expected):
    response = client.evaluate(EvaluationRequest(Prompt.from_text(prompt), expected), MODEL)
    prompt_ids = list(plan_completion(CompletionRequest(prompt=Prompt.from_text(prompt)), engine.model).prompt_tokens)
    expected_ids = engine.model.tokenize(expected)
    rows = log_softmax(prompt_ids + expected_ids)
    positions = range(len(prompt_ids) - 1, len(prompt_ids) + len(expected_ids) - 1)  # row i predicts token i+1
    theirs = [rows[p, token] for p, token in zip(positions, expected_ids)]
    result = response.result
    assert result["token_count"] == len(expected_ids) and result["character_count"] == len(expected)
    assert result["log_probability"] == pytest.approx(sum(theirs), abs=0.02)
    assert result["log_perplexity"] == -result["log_probability"]
    assert result["log_perplexity_per_token"] == pytest.approx(-sum(theirs) / len(expected_ids), abs=0.02)
    assert result["log_perplexity_per_character"] == pytest.approx(-sum(theirs) / len(expected), abs=0.01)
    assert result["completion"] == expected
    assert response.num_tokens_prompt_total == len(prompt_ids) + len(expected_ids)
    # correct_greedy: where the reference is clear (a margin no rounding flips), the same verdict
    margins = [rows[p, token] - np.max(np.delete(rows[p], token)) for p, token in zip(positions, expected_ids)]
    if all(abs(m) > 0.1 for m in margins):
        assert result["correct_greedy"] == all(m > 0 for m in margins)


def test_evaluate_of_the_greedy_completion_is_correct_greedy(client):
    prompt = Prompt.from_text("Once upon a time, there was a")
    greedy = client.complete(CompletionRequest(prompt=prompt, maximum_tokens=6), MODEL).completions[0].completion
    assert client.evaluate(EvaluationRequest(prompt, greedy), MODEL).result["correct_greedy"] is True


def test_evaluate_refuses_an_empty_expected_completion(client):
    with pytest.raises(InvalidRequest, match="completion_expected"):
        client.evaluate(EvaluationRequest(Prompt.from_text("Hi"), ""), MODEL)


def conversation(**fields):
    return ChatRequest(model=MODEL, messages=[Message(Role.System, "You are terse."),
                                              Message(Role.User, "Name a colour.")], **fields)


def test_chat_is_the_completion_of_the_rendered_conversation(client):
    request = conversation(maximum_tokens=12, temperature=0)
    reply = client.chat(request, MODEL)
    rendered = client.apply_chat_template(MODEL, [{"role": "system", "content": "You are terse."},
                                                  {"role": "user", "content": "Name a colour."}])
    completion = client.complete(CompletionRequest(prompt=Prompt.from_text(rendered), maximum_tokens=12,
                                                   disable_optimizations=True), MODEL).completions[0]
    assert reply.message.role == Role.Assistant and reply.message.content == completion.completion
    assert reply.finish_reason == (FinishReason.Length if completion.finish_reason == "maximum_tokens"
                                   else FinishReason.Stop)


def test_chat_streaming_adds_up_to_chat_sync_and_async(client):
    request = conversation(maximum_tokens=16, temperature=0.7, seed=5, stream_options=StreamOptions(True))
    whole = client.chat(request, MODEL)
    items = list(client.chat_with_streaming(request, MODEL))
    assert items[0] == ChatStreamChunk(content="", role=Role.Assistant)
    assert isinstance(items[-2], FinishReason) and items[-2] == whole.finish_reason
    usage = items[-1]
    assert isinstance(usage, Usage) and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    text = "".join(item.content for item in items if isinstance(item, ChatStreamChunk))
    assert text == whole.message.content and usage.completion_tokens > 0

    async def run():
        async with AsyncClient(client=client) as aclient:
            replies = [item async for item in aclient.chat_with_streaming(request, MODEL)]
            return replies, await aclient.chat(request, MODEL)

    replies, again = asyncio.run(run())
    assert replies == items and again == whole


def test_chat_refuses_what_it_cannot_do_before_any_work(client):
    with pytest.raises(InvalidRequest, match="^tools: "):
        client.chat(conversation(tools=[{"type": "function"}]), MODEL)
    with pytest.raises(InvalidRequest, match="^messages: must hold at least one"):
        client.chat(ChatRequest(model=MODEL, messages=[]), MODEL)
    with pytest.raises(InvalidRequest, match="^maximum_tokens: "):
        client.chat_with_streaming(conversation(maximum_tokens=-1), MODEL)  # raised at the call, not later


@pytest.mark.parametrize("given,expected", [
    ((None, None, None), dict(temperature=1.0, top_k=0, top_p=0.0)),  # OpenAI's defaults: sampling at 1
    ((0, 0.9, 40), dict(temperature=0.0, top_k=0, top_p=0.0)),  # 0 is greedy, whatever else is set
    ((0.7, 1.0, 5), dict(temperature=0.7, top_k=5, top_p=0.0)),  # top_p 1 keeps everything: off
    ((0.7, 0.5, None), dict(temperature=0.7, top_k=0, top_p=0.5)),
])
def test_openai_sampling_convention(given, expected):
    assert sampling_fields(*given) == expected
