"""The official aleph-alpha-client against a real `edgecomplete serve`: the same answers as the
in-process Client on this machine, its errors as the client's exceptions, and raw HTTP abuse
answered with the right 4xx while the server keeps serving."""

import asyncio
import http.client
import json
import signal
from urllib.parse import urlparse

import aleph_alpha_client as aleph
import aleph_alpha_client.chat as aleph_chat_module
import aleph_alpha_client.steering as aleph_steering
import pytest
from aleph_alpha_client.completion import CompletionSummary, StreamChunk, StreamSummary

from edgecomplete import (ChatRequest, CompletionRequest, CompletionResponse, DetokenizationRequest, EvaluationRequest,
                          Message, Prompt, Role, SteeringPairedExample, TokenizationRequest)
from edgecomplete.steering import concept_id

from edgecomplete import models

from ..conftest import MODEL
from .conftest import TOKEN, hang_up, raw, start_server, stop_server

REQUESTS = [
    dict(prompt="The capital of France is", maximum_tokens=12),
    dict(prompt="List three colours:", maximum_tokens=20, stop_sequences=["\n\n", "4."], tokens=True),
    dict(prompt="Once upon a time", maximum_tokens=8, log_probs=3, echo=True, raw_completion=True),
    dict(prompt="Q: What is 2+2?\nA:", maximum_tokens=6, n=2, best_of=3, presence_penalty=0.5),
    dict(prompt="The sea", maximum_tokens=10, top_k=1, frequency_penalty=1.0, minimum_tokens=10),
]


def aleph_request(fields):
    values = dict(fields, prompt=aleph.Prompt.from_text(fields["prompt"]))
    return aleph.CompletionRequest(**values)


def ours(fields):
    return CompletionRequest(**dict(fields, prompt=Prompt.from_text(fields["prompt"])))


@pytest.fixture(scope="module")
def remote(server):
    return aleph.Client(token=TOKEN, host=f"{server}/v1", total_retries=0)


def test_version_and_models(remote):
    remote.validate_version()
    (model,) = remote.models()
    assert model["name"] == MODEL and model["max_context_size"] > 0


@pytest.mark.parametrize("fields", REQUESTS, ids=range(len(REQUESTS)))
def test_complete_answers_as_the_in_process_client(remote, client, fields):
    over_http = remote.complete(aleph_request(fields), model=MODEL)
    here = client.complete(ours(fields), MODEL)
    assert CompletionResponse.from_json(over_http.to_json()) == here


def test_streaming_adds_up_to_complete(server, remote):
    fields = dict(prompt="The capital of France is", maximum_tokens=12, log_probs=1, tokens=True)

    async def stream():
        async with aleph.AsyncClient(token=TOKEN, host=f"{server}/v1") as client:
            return [item async for item in client.complete_with_streaming(aleph_request(fields), model=MODEL)]

    items = asyncio.run(stream())
    assert isinstance(items[-1], CompletionSummary) and isinstance(items[-2], StreamSummary)
    whole = remote.complete(aleph_request(fields), model=MODEL).completions[0]
    chunks = [item for item in items if isinstance(item, StreamChunk)]
    assert "".join(c.completion for c in chunks) == whole.completion
    assert [t for c in chunks for t in c.completion_tokens] == whole.completion_tokens


def test_tokenize_and_detokenize_round_trip(remote, client):
    request = aleph.TokenizationRequest("Hello, wide world!", tokens=True, token_ids=True)
    tokens = remote.tokenize(request, model=MODEL)
    assert tokens.token_ids == client.tokenize(TokenizationRequest("Hello, wide world!", True, True), MODEL).token_ids
    text = remote.detokenize(aleph.DetokenizationRequest(tokens.token_ids), model=MODEL).result
    assert text == client.detokenize(DetokenizationRequest(tokens.token_ids), MODEL).result == "Hello, wide world!"


@pytest.mark.parametrize("prompt,expected", [("The capital of France is", " Paris"),
                                             ("Roses are red,", " violets are blue")])
def test_evaluate_answers_as_the_in_process_client(remote, client, prompt, expected):
    over_http = remote.evaluate(aleph.EvaluationRequest(aleph.Prompt.from_text(prompt), expected), model=MODEL)
    here = client.evaluate(EvaluationRequest(Prompt.from_text(prompt), expected), MODEL)
    assert over_http.result == here.result and over_http.num_tokens_prompt_total == here.num_tokens_prompt_total
    assert over_http.model_version == MODEL and over_http.result["log_probability"] < 0


def aleph_chat(**fields):
    messages = [aleph_chat_module.Message(role=aleph_chat_module.Role.System, content="You are terse."),
                aleph_chat_module.Message(role=aleph_chat_module.Role.User, content="Name a colour.")]
    return aleph_chat_module.ChatRequest(model=MODEL, messages=messages, **fields)


def our_chat(**fields):
    return ChatRequest(model=MODEL, messages=[Message(Role.System, "You are terse."),
                                              Message(Role.User, "Name a colour.")], **fields)


def test_chat_answers_as_the_in_process_client(remote, client):
    over_http = remote.chat(aleph_chat(maximum_tokens=12, temperature=0.0), model=MODEL)
    here = client.chat(our_chat(maximum_tokens=12, temperature=0.0), MODEL)
    assert over_http.message.content == here.message.content and over_http.message.role.value == "assistant"
    assert over_http.finish_reason.value == here.finish_reason.value


def test_chat_streaming_in_the_clients_chunk_shapes(server, client):
    async def stream():
        async with aleph.AsyncClient(token=TOKEN, host=f"{server}/v1") as aleph_client:
            request = aleph_chat(maximum_tokens=10, temperature=0.0, stream_options=aleph_chat_module.StreamOptions(True))
            return [item async for item in aleph_client.chat_with_streaming(request, model=MODEL)]

    items = asyncio.run(stream())
    here = client.chat(our_chat(maximum_tokens=10, temperature=0.0), MODEL)
    assert items[0].role == aleph_chat_module.Role.Assistant and items[0].content == ""
    assert "".join(i.content for i in items if isinstance(i, aleph_chat_module.ChatStreamChunk)) == here.message.content
    assert isinstance(items[-2], aleph_chat_module.FinishReason) and items[-2].value == here.finish_reason.value
    usage = items[-1]
    assert isinstance(usage, aleph_chat_module.Usage)
    assert usage.completion_tokens == 10 if here.finish_reason.value == "length" else usage.completion_tokens <= 10
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_the_async_client_answers_as_the_sync_one(server, remote):
    completion = aleph_request(dict(prompt="Q: What is 2+2?\nA:", maximum_tokens=6, n=2, best_of=3, log_probs=2,
                                    tokens=True))
    evaluation = aleph.EvaluationRequest(aleph.Prompt.from_text("The sea is"), " blue")
    tokenization = aleph.TokenizationRequest("Hello, wide world!", tokens=True, token_ids=True)

    async def run():
        async with aleph.AsyncClient(token=TOKEN, host=f"{server}/v1") as client:
            return (await client.complete(completion, model=MODEL), await client.evaluate(evaluation, model=MODEL),
                    await client.tokenize(tokenization, model=MODEL), await client.models())

    completed, evaluated, tokenized, models = asyncio.run(run())
    assert completed.to_json() == remote.complete(completion, model=MODEL).to_json()
    assert evaluated.result == remote.evaluate(evaluation, model=MODEL).result
    assert tokenized.token_ids == remote.tokenize(tokenization, model=MODEL).token_ids
    assert [m["name"] for m in models] == [MODEL]


def test_the_seeds_examples_run_against_the_server_with_the_official_client(server, remote):
    # The seed's usage examples, with the official client pointed at the server: sampled with
    # fresh seeds, so what is checked is the shape and the rules every answer must follow.
    request = aleph.CompletionRequest(prompt=aleph.Prompt.from_text("The future of AI is"), maximum_tokens=50,
                                      temperature=0.7)
    (simple,) = remote.complete(request, model=MODEL).completions
    assert simple.finish_reason in ("maximum_tokens", "end_of_text") and simple.completion
    request = aleph.CompletionRequest(prompt=aleph.Prompt.from_text("Write a creative story about:"),
                                      maximum_tokens=200, temperature=0.8, top_p=0.9, n=3,
                                      stop_sequences=["\n\n", "THE END"], presence_penalty=0.1, frequency_penalty=0.1)
    response = remote.complete(request, model=MODEL)
    assert len(response.completions) == 3
    for result in response.completions:
        assert "\n\n" not in result.completion and "THE END" not in result.completion
        assert result.finish_reason in ("maximum_tokens", "end_of_text", "stop_sequence_reached")

    async def streaming():
        async with aleph.AsyncClient(token=TOKEN, host=f"{server}/v1") as client:
            request = aleph.CompletionRequest(prompt=aleph.Prompt.from_text(
                "Write a long story about space exploration:"), maximum_tokens=40, temperature=0.7)
            return [item async for item in client.complete_with_streaming(request, "smollm2-135m")]

    items = asyncio.run(streaming())
    assert isinstance(items[-1], CompletionSummary) and items[-1].num_tokens_generated <= 40
    assert sum(isinstance(item, StreamSummary) for item in items) == 1


def test_errors_arrive_as_the_clients_exceptions(server, remote):
    with pytest.raises(ValueError) as error:
        remote.complete(aleph.CompletionRequest(prompt=aleph.Prompt.from_text("x"), top_p=3.0), model=MODEL)
    assert error.value.args[0] == 400 and "top_p: must be a number in [0.0, 1.0]" in error.value.args[1]
    with pytest.raises(PermissionError):
        aleph.Client(token="wrong", host=server, total_retries=0).models()
    with pytest.raises(RuntimeError) as error:  # 404
        remote.complete(aleph.CompletionRequest(prompt=aleph.Prompt.from_text("x")), model="luminous-base")
    assert error.value.args[0] == 404 and "UNKNOWN_MODEL" in error.value.args[1]


@pytest.mark.parametrize("body,status,says", [
    (b'{"model": "smollm2-135m", "prompt": ', 400, "not JSON"),
    (b'\xff\xfe{"prompt": "x"}', 400, "not UTF-8"),
    (b'["a list"]', 400, "JSON object"),
    (json.dumps({"model": MODEL, "prompt": "x", "maximum_tokens": "ten"}).encode(), 400, "maximum_tokens"),
    (json.dumps({"model": MODEL, "prompt": [{"type": "text"}]}).encode(), 400, "prompt: item 0"),
    (json.dumps({"model": MODEL, "prompt": "x", "logit_bias": {"a": 1}}).encode(), 400, "logit_bias"),
    (json.dumps({"model": MODEL, "prompt": "x", "wat": 1}).encode(), 400, "wat"),
    (json.dumps({"model": MODEL, "prompt": "x", "best_of": 2, "stream": True}).encode(), 400, "best_of"),
    (json.dumps({"model": str(models.resolve(MODEL)), "prompt": "x"}).encode(), 404, "unknown model"),
    (b" " * (33 * 1024 * 1024), 413, "over"),
])
def test_bad_bodies_get_a_4xx_naming_what_is_wrong(server, body, status, says):
    code, answer, _ = raw(server, "POST", "/v1/complete", body)
    assert code == status and says in answer["error"], answer
    assert raw(server, "GET", "/v1/version")[0] == 200  # and the server keeps serving


@pytest.mark.parametrize("body,says", [
    ({"model": MODEL, "prompt": "x"}, "completion_expected: must be a string"),
    ({"model": MODEL, "prompt": "x", "completion_expected": ""}, "completion_expected: must have at least one token"),
    ({"model": MODEL, "prompt": "x", "completion_expected": "y", "wat": 1}, "wat: is not a field"),
])
def test_bad_evaluations_get_a_400_naming_the_field(server, body, says):
    code, answer, _ = raw(server, "POST", "/v1/evaluate", json.dumps(body).encode())
    assert code == 400 and says in answer["error"], answer


def test_steering_concepts_over_http_as_in_process(server, remote, client):
    pairs = [("The service was slow and rude.", "The service was quick and kind."),
             ("I am tired of this grey town.", "I love this bright little town.")]
    request = aleph_steering.SteeringConceptCreationRequest(
        examples=[aleph_steering.SteeringPairedExample(negative=n, positive=p) for n, p in pairs])
    concept = remote.create_steering_concept(request).id
    assert concept == concept_id([SteeringPairedExample(n, p) for n, p in pairs])
    fields = dict(prompt="Our town is", maximum_tokens=10, steering_concepts=[concept])
    over_http = remote.complete(aleph_request(fields), model=MODEL)
    assert CompletionResponse.from_json(over_http.to_json()) == client.complete(ours(fields), MODEL)
    code, answer, _ = raw(server, "POST", "/steering_concepts", json.dumps({"examples": []}).encode())
    assert code == 400 and answer["error"].startswith("examples: must hold at least one pair")
    body = json.dumps({"model": MODEL, "prompt": "x", "steering_concepts": ["f" * 64]}).encode()
    code, answer, _ = raw(server, "POST", "/complete", body)
    assert code == 400 and "steering_concepts: unknown steering concept" in answer["error"]


def test_a_client_that_leaves_mid_stream_does_not_stop_the_server(server, remote):
    address = urlparse(server)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    body = json.dumps({"model": MODEL, "prompt": "Tell a long story.", "maximum_tokens": 2000,
                       "minimum_tokens": 2000, "stream": True})
    connection.request("POST", "/v1/complete", body=body, headers={"Authorization": f"Bearer {TOKEN}"})
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("content-type").startswith("text/event-stream")
    assert response.read(7) == b"data: {"
    hang_up(connection)  # gone mid-stream
    again = remote.complete(aleph.CompletionRequest(prompt=aleph.Prompt.from_text("Hi"), maximum_tokens=3),
                            model=MODEL)
    assert again.num_tokens_generated == 3


def test_ctrl_c_ends_streams_in_flight_and_stops_cleanly(smollm2_path):
    process, url = start_server()
    try:
        address = urlparse(url)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        body = json.dumps({"model": MODEL, "prompt": "Tell a long story.", "maximum_tokens": 3000,
                           "minimum_tokens": 3000, "stream": True})
        connection.request("POST", "/complete", body=body)
        response = connection.getresponse()
        assert response.read(7) == b"data: {"
        process.send_signal(signal.SIGINT)
        rest = response.read()  # the stream ends (does not hang until 3000 tokens)
        assert rest.count(b"data: ") < 3000
        assert process.wait(timeout=60) == 130  # the shell's status for a Ctrl+C, after a clean shutdown
        assert b"Traceback" not in process.stderr.read()
    finally:
        stop_server(process)
