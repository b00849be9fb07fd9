"""Chat templates, tokenization and model facts through the public API."""

import asyncio

import pytest

from edgecomplete import (
    AsyncClient,
    CompletionRequest,
    DetokenizationRequest,
    InvalidRequest,
    Prompt,
    TokenizationRequest,
    fold_stream,
)

from ..conftest import MODEL


def test_chat_template_renders_the_models_format(client):
    text = client.apply_chat_template(MODEL, [{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": "Hi"}])
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    reply = client.complete(CompletionRequest(prompt=Prompt.from_text(text), maximum_tokens=40, minimum_tokens=1,
                                              disable_optimizations=True), model=MODEL).completions[0]
    assert reply.finish_reason in ("end_of_text", "maximum_tokens") and reply.completion


def test_tokenize_and_detokenize_round_trip(client):
    response = client.tokenize(TokenizationRequest("Hello world, again", tokens=True, token_ids=True), MODEL)
    assert "".join(response.tokens) == "Hello world, again"
    assert client.detokenize(DetokenizationRequest(response.token_ids), MODEL).result == "Hello world, again"
    only_ids = client.tokenize(TokenizationRequest("Hello", tokens=False, token_ids=True), MODEL)
    assert only_ids.tokens is None and only_ids.token_ids
    with pytest.raises(InvalidRequest, match="token_ids"):
        client.detokenize(DetokenizationRequest([10**9]), MODEL)


def test_model_info_and_async_helpers_share_a_client(client):
    info = client.model_info(MODEL)
    assert info["vocab_size"] == 49152 and info["context_length"] == 8192

    async def main():
        async with AsyncClient(client=client) as shared:
            text = await shared.apply_chat_template(MODEL, [{"role": "user", "content": "Hi"}])
            items = [i async for i in shared.complete_with_streaming(
                CompletionRequest(prompt=Prompt.from_text(text), maximum_tokens=5, disable_optimizations=True), MODEL)]
            return await shared.model_info(MODEL), fold_stream(items)

    shared_info, response = asyncio.run(main())
    assert shared_info == info
    assert response.num_tokens_generated <= 5
    assert client.complete(CompletionRequest(prompt=Prompt.from_text("Hi"), maximum_tokens=2), model=MODEL)
