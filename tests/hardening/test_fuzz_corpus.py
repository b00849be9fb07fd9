"""The crashers the fuzzers found (test_fuzz_*.py), kept as regression tests: each body is
refused naming its field, in-process and over HTTP, where it once raised (a traceback, a 500, a
cut stream)."""


import httpx
import pytest

from edgecomplete import CompletionRequest, InvalidRequest

from ..conftest import MODEL
from ..server.conftest import app_server
from .test_fuzz_bodies import json_bytes, nested

CORPUS = [
    # (what it found, the body, the field its refusal names)
    ("an int beyond any float in a number field: OverflowError in math.isfinite",
     {"prompt": "a", "maximum_tokens": 2, "temperature": 10**400}, "temperature"),
    ("a finite temperature over the float32 range: the C core refused inf (NativeError)",
     {"prompt": "a", "maximum_tokens": 2, "temperature": 1e308}, "temperature"),
    ("a logit bias over the float32 range",
     {"prompt": "a", "maximum_tokens": 2, "logit_bias": {"5": 1e39}}, "logit_bias"),
    ("an unpaired surrogate in the prompt: UnicodeEncodeError in the tokenizer",
     {"prompt": "a\ud800", "maximum_tokens": 2}, "prompt"),
    ("an unpaired surrogate in a stop sequence: UnicodeEncodeError for the C core",
     {"prompt": "a", "maximum_tokens": 2, "stop_sequences": ["x\udc80y"]}, "stop_sequences"),
    ("an unpaired surrogate in penalty_bias",
     {"prompt": "a", "maximum_tokens": 2, "penalty_bias": "\ud83d"}, "penalty_bias"),
    ("an int of 5,000 digits: the refusal's own message raised ValueError (int-to-str limit)",
     {"prompt": "a", "maximum_tokens": 10**5000}, "maximum_tokens"),
    ("a token id past 32 bits", {"prompt": [{"type": "token_ids", "data": [2**40]}], "maximum_tokens": 1}, "prompt"),
    ("a prompt nested past the recursion limit: the refusal's repr raised RecursionError",
     {"prompt": [nested(3000)], "maximum_tokens": 1}, "prompt"),
    ("a prompt item whose type is an object: TypeError (unhashable) in Prompt.from_json",
     {"prompt": [{"type": {}, "data": "x"}], "maximum_tokens": 1}, "prompt"),
    ("an unknown field: a plain ValueError without a field", {"prompt": "a", "maximum_tokens": 1, "bogus": 1}, "bogus"),
    ("no prompt: a plain ValueError", {"maximum_tokens": 1}, "prompt"),
    ("a logit_bias key that is no token id: a plain ValueError",
     {"prompt": "a", "maximum_tokens": 1, "logit_bias": {"x": 1}}, "logit_bias"),
    ("inclusion options that an exclusion starts: a stream cut after its 200 (no token left at step 3)",
     {"prompt": "The history of", "maximum_tokens": 5, "completion_bias_inclusion": [" the harbour"],
      "completion_bias_exclusion": [" the"]}, "completion_bias_inclusion"),
]
IDS = [found.split(":")[0] for found, _, _ in CORPUS]
# Over HTTP, a body nested past the JSON parser's limit is refused as a whole, before any field.
BODY_REFUSAL = {"a prompt nested past the recursion limit": "the body nests deeper than the JSON parser allows"}


@pytest.mark.parametrize("found, body, field", CORPUS, ids=IDS)
def test_in_process(client, found, body, field):
    with pytest.raises(InvalidRequest) as refused:
        client.complete(CompletionRequest.from_json(body), MODEL)
    assert refused.value.field == field, refused.value


@pytest.fixture(scope="module")
def served(client):
    with app_server(client) as url:
        yield url


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("found, body, field", CORPUS, ids=IDS)
def test_over_http(served, found, body, field, stream):
    answer = httpx.post(f"{served}/complete", content=json_bytes({**body, "model": MODEL, "stream": stream}),
                        headers={"Content-Type": "application/json"}, timeout=60)
    assert answer.status_code == 400, answer.text[:300]
    said = BODY_REFUSAL.get(found.split(":")[0], f"{field}: ")
    assert answer.json()["code"] == "INVALID_REQUEST" and answer.json()["error"].startswith(said), answer.json()


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"prompt": ' + b"[" * 5000 + b"]" * 5000 + b"}"],
                         ids=["brackets", "deep prompt"])
def test_json_nested_past_the_parser_is_a_400(served, data):
    """json.loads' RecursionError was not caught: a 500 (which the Aleph client retries for 90 s)."""
    answer = httpx.post(f"{served}/complete", content=data, headers={"Content-Type": "application/json"}, timeout=60)
    assert answer.status_code == 400 and answer.json()["code"] == "INVALID_REQUEST", answer.text[:300]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions"])
def test_chat_crashers_over_http(served, path):
    """A chat temperature past any float (float() raised OverflowError) and an unpaired surrogate in a message."""
    for body, param in [({"temperature": 10**400}, "temperature"),
                        ({"messages": [{"role": "user", "content": "hi \ud800"}]}, "messages")]:
        full = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, **body}
        answer = httpx.post(f"{served}{path}", content=json_bytes(full),
                            headers={"Content-Type": "application/json"}, timeout=60)
        assert answer.status_code == 400, answer.text[:300]
        assert answer.json()["error"]["param"] == param, answer.json()
