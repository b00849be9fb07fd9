"""Fuzzed bodies over real HTTP to the server app (uvicorn on a thread, over the fuzzers' own
Client): the Aleph route POST /complete with CompletionRequest JSON, OpenAI's POST
/v1/completions and /v1/chat/completions with their fields and the completion API's as
extensions, streamed or not, and raw bytes (not UTF-8, not JSON, nested past any limit).

Every answer is a 4xx in the route's error shape (Aleph: {"error", "code"}; OpenAI: {"error":
{"message", "type", "param", "code"}}), or a 200 whose JSON (or whole event stream) is well
formed; never a 5xx, a cut stream, or no answer. Afterwards the engine holds nothing."""

import json
from typing import Any, Dict, List

import httpx
import pytest
from hypothesis import given, strategies as st

from edgecomplete import CompletionRequest, CompletionResponse, stream_item_from_json
from edgecomplete.stream import fold

from ..server.conftest import app_server
from .test_fuzz_bodies import (DEADLINE, MAX_TOKENS, MODEL, SURROGATES, VALID, WRONG_OF, Hang, Tally,
                               assert_nothing_held, check_response, completion_bodies, fuzz_client, fuzz_settings,
                               json_bytes, junk, mostly, mutated, nonempty_text, poisoned, record, reported, scaled,
                               short_text, token_ids)

ALEPH, COMPLETIONS, CHAT, RAW = scaled(1600), scaled(900), scaled(900), scaled(400)  # 3,800 requests
OPENAI_MAXIMUM = ("max_tokens", "max_completion_tokens", "maximum_tokens")  # the last one given counts
EXTENSIONS = ["top_k", "minimum_tokens", "penalty_bias", "penalty_exceptions", "sequence_penalty",
              "completion_bias_inclusion", "completion_bias_exclusion", "raw_completion", "steering_concepts",
              "repetition_penalties_include_prompt", "use_multiplicative_presence_penalty"]
OPENAI_FINISH = {"length", "stop"}


# ---- bodies ----------------------------------------------------------------------------------

model_name = mostly(st.just(MODEL), st.one_of(
    st.sampled_from(["", "gemma-3-270m", "../smollm2-135m", "/etc/passwd", "x.gguf"]), junk), 12)
stream_flag = mostly(st.booleans(), junk)


@st.composite
def aleph_bodies(draw) -> Dict[str, Any]:
    body = draw(completion_bodies())
    body["model"] = draw(model_name)
    if draw(st.booleans()):
        body["stream"] = draw(stream_flag)
    return body


OPENAI_VALID = {
    "temperature": st.one_of(st.just(0), st.floats(0, 2)), "top_p": st.floats(0, 1),
    "n": st.sampled_from([1, 1, 2, 3, 16]), "stop": st.one_of(nonempty_text, st.lists(nonempty_text, max_size=4)),
    "presence_penalty": VALID["presence_penalty"], "frequency_penalty": VALID["frequency_penalty"],
    "logit_bias": VALID["logit_bias"], "seed": VALID["seed"], "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}), "user": short_text,
    **{name: VALID[name] for name in EXTENSIONS},
}
OPENAI_WRONG = {**{name: WRONG_OF.get(name, junk) for name in OPENAI_VALID}, "stop": st.one_of(SURROGATES, junk),
                "stream_options": junk, "max_tokens": WRONG_OF["maximum_tokens"], "model": model_name}


@st.composite
def openai_bodies(draw, own: Dict[str, st.SearchStrategy]) -> Dict[str, Any]:
    """A body of an OpenAI route: the model, a small max_tokens, a subset of the route's fields
    (`own` and the common ones), then mutations; poisoned when it could generate past MAX_TOKENS."""
    valid = {**OPENAI_VALID, **own}
    body = {"model": draw(model_name), "max_tokens": draw(st.integers(0, MAX_TOKENS))}
    for name in draw(st.lists(st.sampled_from(sorted(valid)), unique=True, max_size=len(valid))):
        body[name] = draw(valid[name])
    body = draw(mutated(body, {**OPENAI_WRONG, **{name: junk for name in own}}))
    return poisoned(body, OPENAI_MAXIMUM)


openai_prompt = st.one_of(short_text, token_ids.filter(bool), st.lists(short_text, min_size=1, max_size=3),
                          st.lists(token_ids.filter(bool), min_size=1, max_size=3))
completions_bodies = st.builds(lambda prompt, body: {"prompt": prompt, **body}, openai_prompt, openai_bodies({
    "logprobs": st.one_of(st.none(), st.integers(0, 5)), "echo": st.booleans(),
    "best_of": st.sampled_from([None, 1, 2, 3]), "suffix": mostly(st.sampled_from([None, ""]), short_text, 4)}))

part = st.one_of(st.builds(lambda text: {"type": "text", "text": text}, short_text),
                 st.builds(lambda url: {"type": "image_url", "image_url": {"url": url}},
                           st.sampled_from(["data:image/png;base64,iVBORw0KGgo=", "http://example.com/x.png",
                                            "data:image/png;base64,!!", "file:///etc/passwd"])))
message = st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "user", "assistant"]),
                                 "content": st.one_of(short_text, st.lists(part, max_size=3))})
chat_bodies = st.builds(lambda messages, body: {"messages": messages, **body},
                        mostly(st.lists(message, min_size=1, max_size=3), st.one_of(st.just([]), junk)),
                        openai_bodies({
                            "logprobs": st.booleans(), "top_logprobs": st.integers(0, 20),
                            "max_completion_tokens": st.integers(0, MAX_TOKENS),
                            "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
                            "tools": st.just([]), "tool_choice": st.just("none"), "hosting": st.none(),
                            "tags": st.lists(short_text, max_size=2)}))

INVALID_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xe2\x82", b"\xc0\xaf"]


@st.composite
def raw_bytes(draw) -> bytes:
    """A body of any route as bytes, then broken: invalid UTF-8, cut short, not an object,
    nested past the recursion limit, a number past any float."""
    data = json_bytes(draw(st.one_of(aleph_bodies(), completions_bodies, chat_bodies)))
    at = draw(st.integers(0, len(data)))
    return draw(st.sampled_from([
        data[:at] + draw(st.sampled_from(INVALID_UTF8)) + data[at:],
        data[:at],
        b"\xef\xbb\xbf" + data,  # a byte-order mark
        data[:at] + b"\x00" + data[at:],
        b"", b"null", b"[]", b'"prompt"', b"1e999999", b"-0", b"{}", b"{" * 3, b"[" * 100_000,
        b"[" * 2000 + b"]" * 2000, b'{"prompt": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"model": "smollm2-135m", "prompt": "x", "maximum_tokens": 1, "temperature": 1' + b"0" * 400 + b"}",
        b'{"model": "smollm2-135m", "prompt": "x", "maximum_tokens": 1, "seed": 1' + b"0" * 5000 + b"}",
        draw(st.binary(max_size=64)),
    ]))


# ---- answers ---------------------------------------------------------------------------------

def events(text: str) -> List[Any]:
    """The `data:` payloads of an event stream ("[DONE]" as is)."""
    payloads = [line[len("data: "):] for line in text.split("\n") if line.startswith("data: ")]
    return [payload if payload == "[DONE]" else json.loads(payload) for payload in payloads]


def check_error(path: str, answer: httpx.Response) -> None:
    body = answer.json()
    if path.removeprefix("/v1") in ("/completions", "/chat/completions"):
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}, body
        assert isinstance(error["message"], str) and (error["param"] is None or isinstance(error["param"], str))
    else:
        assert set(body) == {"error", "code"} and isinstance(body["error"], str), body


def check_aleph(body: Dict[str, Any], answer: httpx.Response) -> None:
    request = CompletionRequest.from_json(body)
    if body.get("stream") is True:
        items = events(answer.text)
        assert items and items[-1]["type"] == "completion_summary", "the stream did not end with its summary"
        response = fold(stream_item_from_json(item) for item in items)
    else:
        response = CompletionResponse.from_json(answer.json())
    check_response(response, request)


def check_openai(path: str, body: Dict[str, Any], answer: httpx.Response) -> None:
    prompt = body.get("prompt")
    prompts = 1 if path.endswith("/chat/completions") or isinstance(prompt, str) or all(
        isinstance(t, int) for t in prompt) else len(prompt)
    choices_wanted = body.get("n", 1) * prompts
    if body.get("stream") is True:
        chunks = events(answer.text)
        assert chunks and chunks[-1] == "[DONE]", "the stream did not end with [DONE]"
        seen = {choice["index"] for chunk in chunks[:-1] for choice in chunk["choices"]}
        ended = [choice["finish_reason"] for chunk in chunks[:-1] for choice in chunk["choices"]
                 if choice["finish_reason"] is not None]
        assert seen == set(range(choices_wanted)) and len(ended) == choices_wanted, (seen, ended)
        assert set(ended) <= OPENAI_FINISH
        return
    whole = answer.json()
    assert [choice["index"] for choice in whole["choices"]] == list(range(choices_wanted))
    for choice in whole["choices"]:
        assert choice["finish_reason"] in OPENAI_FINISH
        text = choice["message"]["content"] if "message" in choice else choice["text"]
        assert isinstance(text, str)
    usage = whole["usage"]
    candidates = max(body.get("n", 1), body.get("best_of") or 1)
    assert 0 <= usage["completion_tokens"] <= prompts * candidates * MAX_TOKENS
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def outcome_over_http(http: httpx.Client, path: str, data: bytes, body: Any) -> str:
    """POST `data` to `path`: "accepted" or "refused"; a 5xx, a cut answer or anything
    malformed fails."""
    try:
        answer = http.post(path, content=data, headers={"Content-Type": "application/json"})
    except httpx.TimeoutException:
        raise Hang(f"POST {path}: no answer within {DEADLINE:.0f} s") from None
    except httpx.RemoteProtocolError as error:
        raise AssertionError(f"POST {path}: the answer was cut: {error}") from None
    assert answer.status_code < 500, f"POST {path}: {answer.status_code} {answer.text[:300]}"
    if answer.status_code != 200:
        assert 400 <= answer.status_code < 500, answer.status_code
        check_error(path, answer)
        return "refused"
    if path.removeprefix("/v1") == "/complete":
        check_aleph(body, answer)
    else:
        check_openai(path, body, answer)
    return "accepted"


# ---- the test --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(smollm2_path):
    """(base URL, engine) of the server app over the fuzzers' own client."""
    with fuzz_client() as client, app_server(client) as url:
        yield url, client.backend.engine(MODEL)


def test_fuzzed_requests_over_http(served, capsys):
    url, engine = served
    tally = Tally("HTTP")
    def sender(paths, bodies, examples):
        @fuzz_settings(examples)
        @given(st.sampled_from(paths), reported(bodies))
        def one(path, drawn):
            body = drawn.value
            data = body if isinstance(body, bytes) else json_bytes(body)
            record(tally, body, lambda: outcome_over_http(http, path, data, body))
        return one

    with httpx.Client(base_url=url, timeout=DEADLINE, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        tally.run([sender(["/complete", "/v1/complete"], aleph_bodies(), ALEPH),
                   sender(["/v1/completions", "/completions"], completions_bodies, COMPLETIONS),
                   sender(["/v1/chat/completions", "/chat/completions"], chat_bodies, CHAT),
                   sender(["/complete", "/v1/completions", "/v1/chat/completions"], raw_bytes(), RAW)], capsys)
    assert tally.requests >= ALEPH + COMPLETIONS + CHAT + RAW and tally.accepted > tally.requests // 6
    assert_nothing_held(engine)
