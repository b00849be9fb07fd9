"""The aleph backend against a real `edgecomplete serve` on loopback: every Aleph feature round-
trips exactly (same seed, same text as the local engine), tokens, chat, steering and images go
through, errors are the API's; and `serve --backend` puts the Aleph API in front of llama-server."""

import aleph_alpha_client as aleph
import pytest

from edgecomplete import (ChatRequest, Client, CompletionRequest, DetokenizationRequest, Image, InvalidRequest,
                          Message, Prompt, Role, SteeringConceptCreationRequest, SteeringPairedExample,
                          TokenizationRequest)
from edgecomplete.remote import RemoteError
from edgecomplete.stream import fold

from ..conftest import MODEL
from ..server.conftest import TOKEN, start_server, stop_server

REQUESTS = [
    dict(maximum_tokens=12),
    dict(maximum_tokens=20, stop_sequences=["\n\n", "4."], tokens=True, raw_completion=True),
    dict(maximum_tokens=8, log_probs=3, echo=True),
    dict(maximum_tokens=6, n=2, best_of=3, presence_penalty=0.5, temperature=0.8, seed=4),
    dict(maximum_tokens=10, top_k=1, frequency_penalty=1.0, minimum_tokens=10, sequence_penalty=0.3),
    dict(maximum_tokens=10, temperature=1.0, seed=9, n=3, completion_bias_exclusion=[" the"]),
]


@pytest.fixture(scope="module")
def remote(serve_url):
    with Client(host=serve_url, backend="aleph", token=TOKEN) as client:
        yield client


def request(**fields):
    return CompletionRequest(prompt=Prompt.from_text("Once upon a time"), **fields)


@pytest.mark.parametrize("fields", REQUESTS)
def test_every_feature_round_trips_exactly(remote, local, fields):
    there = remote.complete(request(**fields), MODEL)
    here = local.complete(request(**fields), MODEL)
    assert there.completions == here.completions
    assert (there.num_tokens_prompt_total, there.num_tokens_generated) == (here.num_tokens_prompt_total,
                                                                         here.num_tokens_generated)
    if not fields.get("best_of"):
        assert fold(remote.complete_with_streaming(request(**fields), MODEL)).completions == here.completions


def test_tokens_chat_and_steering_go_through(remote, local):
    tokenization = TokenizationRequest("Hello, wide world!", True, True)
    assert remote.tokenize(tokenization, MODEL) == local.tokenize(tokenization, MODEL)
    ids = local.tokenize(tokenization, MODEL).token_ids
    assert remote.detokenize(DetokenizationRequest(ids), MODEL).result == "Hello, wide world!"
    chat = ChatRequest(MODEL, [Message(Role.User, "Name a colour.")], maximum_tokens=8, temperature=0.0)
    assert remote.chat(chat, MODEL).message.content == local.chat(chat, MODEL).message.content
    examples = [SteeringPairedExample("I hate it.", "I love it."), SteeringPairedExample("Awful day.", "Lovely day.")]
    concept = remote.create_steering_concept(SteeringConceptCreationRequest(examples)).id
    steered = request(maximum_tokens=10, steering_concepts=[concept])
    assert remote.complete(steered, MODEL).completions == local.complete(steered, MODEL).completions


def test_refusals_are_the_servers(remote):
    with pytest.raises(InvalidRequest, match="no vision projector"):
        remote.complete(CompletionRequest(prompt=Prompt([Image.from_bytes(b"png")]), maximum_tokens=2), MODEL)
    with pytest.raises(InvalidRequest, match="top_p"):
        remote.complete(request(top_p=2.0), MODEL)  # checked here, before any request
    with Client(host=remote.backend.http.host, backend="aleph", token="wrong") as stranger:
        with pytest.raises(RemoteError, match="answered 401.*token"):
            stranger.complete(request(maximum_tokens=2), MODEL)


def test_serve_backend_is_a_gateway_in_front_of_llama_server(llama_server_url):
    process, url = start_server("--backend", llama_server_url, "--protocol", "llama-server")
    try:
        official = aleph.Client(token="any", host=f"{url}/v1", total_retries=0)
        answer = official.complete(aleph.CompletionRequest(prompt=aleph.Prompt.from_text("The capital of France is"),
                                                           maximum_tokens=10, log_probs=1), model=MODEL)
        with Client(host=llama_server_url, backend="llama-server") as direct:
            expected = direct.complete(CompletionRequest(prompt=Prompt.from_text("The capital of France is"),
                                                         maximum_tokens=10, log_probs=1), MODEL)
        assert answer.completions[0].completion == expected.completions[0].completion
        with pytest.raises(ValueError) as refused:  # the Aleph client's error for a 400
            official.complete(aleph.CompletionRequest(prompt=aleph.Prompt.from_text("Hi"), maximum_tokens=2,
                                                      echo=True), model=MODEL)
        assert "llama-server backend" in str(refused.value)
    finally:
        stop_server(process)
