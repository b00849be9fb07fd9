"""What the fuzzers send and what every answer must keep (shared by tests/hardening/test_fuzz_*.py).

Request bodies are CompletionRequest JSON (or OpenAI's) drawn by hypothesis: a random subset of
the fields (every combination), most values valid, some replaced by wrong types, huge and
negative numbers, NaN and infinities, empty and giant strings, unpaired surrogates, deep nesting,
huge token ids, thousands of stop sequences. A body that could generate many tokens (no small
maximum) is poisoned with a value validation refuses, so the whole run stays cheap.

An answer is a refusal naming a field, or a well-formed response; anything else is a crash,
which fails the test with the body that caused it. The crashes these fuzzers found are kept in
test_fuzz_corpus.py. The one test here checks validation alone, without the model.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, Iterator, List, Sequence

from hypothesis import HealthCheck, given, settings, strategies as st

from edgecomplete import (Client, CompletionRequest, CompletionResponse, InvalidRequest, SteeringConceptCreationRequest,
                          SteeringPairedExample, check_request)
from edgecomplete.fields import REQUEST_FIELDS
from edgecomplete.steering import concept_id

MODEL = "smollm2-135m"
VOCAB, CONTEXT, MAX_SEQUENCES = 49_152, 8192, 16  # of the test client's smollm2-135m
MAX_TOKENS = 4  # a request let through generates at most this many tokens per candidate
DEADLINE = 60.0  # seconds one call may take before it counts as a hang
FLOAT32_MAX = 3.4028234663852886e38
FIELD_NAMES = {f.name for f in fields(CompletionRequest)}
FINISH_REASONS = {"maximum_tokens", "end_of_text", "stop_sequence_reached"}
KIND = {f.name: f.kind for f in REQUEST_FIELDS}
NUMBER_FIELDS = {name for name, kind in KIND.items() if kind == "float"} | {"logit_bias", "steering_strengths"}

# A concept the fuzzers may steer with (created by the faces' fixture; its id is its examples' hash).
CONCEPT_EXAMPLES = [SteeringPairedExample("The food was awful.", "The food was wonderful.")]
CONCEPT = concept_id(CONCEPT_EXAMPLES)


SCALE = float(os.environ.get("EDGECOMPLETE_FUZZ_SCALE", "1"))  # 0.1 for a quick look, 10 for a long run


def scaled(examples: int) -> int:
    return max(1, round(examples * SCALE))


def fuzz_settings(examples: int) -> settings:
    """Reproducible (derandomized, no example database) and untimed: the count is the budget."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    report_multiple_bugs=False, print_blob=False,
                    suppress_health_check=list(HealthCheck))


# ---- values -----------------------------------------------------------------------------------

def mostly(usual: st.SearchStrategy, unusual: st.SearchStrategy, odds: int = 8) -> st.SearchStrategy:
    """`usual`, and `unusual` once in `odds + 1` draws (st.one_of picks each branch alike)."""
    return st.sampled_from([True] * odds + [False]).flatmap(lambda pick: usual if pick else unusual)


def nested(depth: int, leaf: Any = 0) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


BIG_INTS = mostly(st.sampled_from([2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, 10**309,
                                   -10**309, -2**31, -2**63]),
                  st.just(5000).map(lambda digits: 10**digits))  # past Python's int-to-str limit
SPECIAL_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1e-310, 1e-45, 1e38, 3.5e38, 1e308,
                                  -1e308, sys.float_info.max])
SURROGATES = st.one_of(st.sampled_from(["\ud800", "\udfff", "x\udc80y", "\ud83d", "\ud83d\ude00"]),
                       st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3))
SPECIAL_TEXTS = st.sampled_from(["", " ", "\n", "\t\r\n", "\x00", "<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                 "<__media__>", "\ufffd", "\U0001F600", "\u200b", "é", "\\", '"', "0", "null"])
short_text = st.one_of(st.text(max_size=16), SPECIAL_TEXTS)
nonempty_text = st.one_of(st.text(min_size=1, max_size=12), st.sampled_from([".", "\n", " the", "<|im_end|>"]))
giant_text = st.sampled_from(["x" * 200_000, "word " * 40_000, "\U0001F600" * 30_000, "a\n" * 50_000])
deep = st.integers(1, 3000).map(nested)
scalar_junk = st.one_of(st.none(), st.booleans(), st.integers(), BIG_INTS, st.floats(), SPECIAL_FLOATS, short_text,
                        SURROGATES)
junk = st.one_of(st.recursive(scalar_junk, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=10), deep,
    giant_text)
many_texts = st.integers(1000, 5000).map(lambda k: [f"{i}" for i in range(k)])


def texts_of(item: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(item, max_size=4)


# Valid values of each field, the model's limits kept (a few combinations are still refused:
# minimum_tokens over the maximum, best_of under n, a multiplicative penalty of -1 or less).
VALID: Dict[str, st.SearchStrategy] = {
    "maximum_tokens": st.integers(0, MAX_TOKENS),
    "temperature": st.one_of(st.sampled_from([0.0, 0.7, 1.0]), st.floats(0, 3)),
    "top_k": st.one_of(st.integers(0, 50), st.just(2**31 - 1)),
    "top_p": st.floats(0, 1),
    "presence_penalty": st.floats(-2, 2), "frequency_penalty": st.floats(-2, 2), "sequence_penalty": st.floats(-2, 2),
    "penalty_bias": st.one_of(st.none(), short_text),
    "best_of": st.sampled_from([None, None, 1, 2, 3, 4, MAX_SEQUENCES]),  # the sequence limit, rarely (costly)
    "n": st.sampled_from([1, 1, 1, 2, 3, 4, 5, 8, MAX_SEQUENCES]),
    "logit_bias": st.one_of(st.none(), st.dictionaries(st.integers(0, VOCAB - 1).map(str), st.floats(-50, 50),
                                                       max_size=5)),
    "log_probs": st.one_of(st.none(), st.integers(0, 20)),
    "minimum_tokens": st.integers(0, MAX_TOKENS),
    "sequence_penalty_min_length": st.integers(2, 8),
    "contextual_control_threshold": st.one_of(st.none(), st.floats(0, 1)),
    "stop_sequences": st.one_of(st.none(), texts_of(nonempty_text), many_texts),
    "steering_concepts": st.one_of(st.none(), st.just([CONCEPT])),
    "steering_strengths": st.one_of(st.none(), st.floats(-10, 10).map(lambda s: {CONCEPT: s})),
    "seed": st.one_of(st.none(), st.integers(-2**64, 2**64)),
}
_VALID_OF_KIND = {"bool": st.booleans(), "tristate": st.one_of(st.none(), st.booleans()),
                  "list": st.one_of(st.none(), texts_of(nonempty_text))}
VALID.update({name: _VALID_OF_KIND[kind] for name, kind in KIND.items() if name not in VALID})

# Wrong values, by the kind of field.
_WRONG_NUMBER = st.one_of(BIG_INTS, SPECIAL_FLOATS, st.floats(), st.integers(-10**6, -1), st.booleans(),
                          st.sampled_from(["1", "1.0", "nan", ""]), st.none(), junk)
WRONG: Dict[str, st.SearchStrategy] = {
    "int": st.one_of(_WRONG_NUMBER, st.integers(CONTEXT + 1, 2**40)),
    "float": _WRONG_NUMBER,
    "bool": st.one_of(st.integers(0, 1), st.sampled_from(["true", "false", "", "0"]), st.none(), junk),
    "str": st.one_of(SURROGATES, giant_text, junk),
    "list": st.one_of(short_text, SURROGATES.map(lambda s: [s]), st.just([""]), giant_text.map(lambda t: [t]),
                      many_texts, st.lists(junk, min_size=1, max_size=3), junk),
    "bias": st.one_of(st.dictionaries(st.sampled_from(["-1", "49152", "49151", " 12", "1e3", "1_0", "\u0663", "0x10",
                                                       "", "nan", "99999999999999999999", "1.5"]), junk, max_size=3),
                      st.dictionaries(st.integers(0, VOCAB - 1).map(str), _WRONG_NUMBER, min_size=1, max_size=3),
                      junk),
    "strengths": st.one_of(st.dictionaries(st.text(max_size=70), junk, max_size=3),
                           _WRONG_NUMBER.map(lambda v: {CONCEPT: v}), junk),
}
WRONG["tristate"] = WRONG["bool"]
WRONG_OF = {name: WRONG[kind] for name, kind in KIND.items()}
WRONG_OF["maximum_tokens"] = st.one_of(_WRONG_NUMBER.filter(lambda v: v is not None), st.integers(CONTEXT + 1, 2**40))
WRONG_OF["steering_concepts"] = st.one_of(WRONG["list"], st.just(["a" * 64]), st.just([CONCEPT.upper()]))

# ---- prompts ----------------------------------------------------------------------------------

token_ids = st.lists(st.integers(0, VOCAB - 1), max_size=8)
bad_token = st.one_of(st.sampled_from([VOCAB, VOCAB + 1, -1, 2**31, 2**63, 10**30, 1.0, math.nan, True, "5", None]),
                      BIG_INTS)
text_item = st.builds(lambda data: {"type": "text", "data": data}, short_text)
tokens_item = st.builds(lambda data: {"type": "token_ids", "data": data}, token_ids)
good_prompt = st.one_of(short_text, st.lists(st.one_of(text_item, tokens_item), max_size=4))
bad_item = st.one_of(
    st.builds(lambda t, bad, at: {"type": "token_ids", "data": t[:at] + [bad] + t[at:]}, token_ids, bad_token,
              st.integers(0, 8)),
    st.builds(lambda k, t: {"type": "token_ids", "data": [t] * k}, st.integers(CONTEXT + 1, 20_000),
              st.integers(0, VOCAB - 1)),
    st.builds(lambda data: {"type": "text", "data": data}, st.one_of(SURROGATES, giant_text, junk)),
    st.builds(lambda data, extra: {"type": "image", "data": data, **extra},
              st.one_of(st.sampled_from(["", "!!", "iVBORw0KGgo=", "R0lGODlhAQABAAAAACw="]), junk),
              st.sampled_from([{}, {"x": 0, "y": 0, "size": 1}, {"size": -1}, {"x": "a", "y": None, "size": 2**64}])),
    st.builds(lambda kind, controls: {"type": kind, "data": "x" if kind != "token_ids" else [1], "controls": controls},
              st.sampled_from(["text", "token_ids", "image"]),
              st.one_of(st.just([{"start": 0, "length": 1, "factor": 2.0}]), st.just([{"index": 0, "factor": 0.5}]),
                        junk)),
    st.dictionaries(st.sampled_from(["type", "data", "controls"]), junk, max_size=3),
    st.builds(lambda kind: {"type": kind, "data": "x"}, st.one_of(st.sampled_from(["Text", "tokens", "", None]), junk)),
    junk)
bad_prompt = st.one_of(SURROGATES, giant_text, junk, st.builds(lambda good, bad, at: good[:at] + [bad] + good[at:],
                                                               st.lists(st.one_of(text_item, tokens_item), max_size=3),
                                                               bad_item, st.integers(0, 3)))

# ---- bodies -----------------------------------------------------------------------------------

OPTIONAL = sorted(FIELD_NAMES - {"prompt", "maximum_tokens"})


def bounded(body: Dict[str, Any], maximum_names=("maximum_tokens",)) -> bool:
    """Whether the body asks for at most MAX_TOKENS tokens per candidate: the last of
    `maximum_names` it holds is a small integer (no maximum generates up to the context)."""
    value = None
    for name in maximum_names:
        value = body.get(name, value)
    return type(value) is int and 0 <= value <= MAX_TOKENS


@st.composite
def mutated(draw, body: Dict[str, Any], wrong: Dict[str, st.SearchStrategy]) -> Dict[str, Any]:
    """`body` with 0 to 3 mutations: a field set wrong, a field removed, an unknown key added."""
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 1, 2, 3]))):
        action = draw(st.sampled_from(["wrong"] * 10 + ["remove", "unknown"]))
        if action == "wrong":
            name = draw(st.sampled_from(sorted(wrong)))
            body[name] = draw(wrong[name])
        elif action == "remove" and body:
            body.pop(draw(st.sampled_from(sorted(body))))
        else:
            body[draw(st.one_of(st.text(max_size=20), SURROGATES, st.sampled_from(["Prompt", "n ", "model"])))] = \
                draw(junk)
    return body


@st.composite
def completion_bodies(draw) -> Dict[str, Any]:
    """CompletionRequest JSON: a prompt and a small maximum, a random subset of the other fields,
    then mutations; poisoned (temperature -1) when it could generate past MAX_TOKENS."""
    body = {"prompt": draw(mostly(good_prompt, bad_prompt, 4)),
            "maximum_tokens": draw(VALID["maximum_tokens"])}
    for name in draw(st.lists(st.sampled_from(OPTIONAL), unique=True, max_size=len(OPTIONAL))):
        body[name] = draw(VALID[name])
    if body.get("steering_strengths"):
        body["steering_concepts"] = [CONCEPT]  # the strengths' concept
    wrong = {**WRONG_OF, "prompt": bad_prompt}
    chaos = st.dictionaries(st.one_of(st.sampled_from(sorted(FIELD_NAMES)), st.text(max_size=8)), junk, max_size=6)
    body = draw(mostly(mutated(body, wrong), chaos, 15))
    return poisoned(body)


def poisoned(body: Dict[str, Any], maximum_names=("maximum_tokens",)) -> Dict[str, Any]:
    if not bounded(body, maximum_names):
        body["temperature"] = -1.0  # refused before anything is generated
    return body


# ---- reporting -------------------------------------------------------------------------------

_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 6, 120, 120


def shown(value: Any) -> str:
    """A short repr for messages, also of what repr() cannot show (deep nesting, giant ints)."""
    try:
        return _SHOWN.repr(value)
    except (ValueError, RecursionError) as error:
        return f"<{type(value).__name__} that repr() refuses: {error}>"[:200]


class Shown:
    """A drawn value that hypothesis reports by `shown` (its own printer recurses into deep
    nesting and cannot print giant ints)."""

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:
        return shown(self.value)

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(repr(self))


@st.composite
def reported(draw, strategy: st.SearchStrategy) -> Shown:
    return Shown(draw(strategy))


# ---- the client under test --------------------------------------------------------------------

@contextmanager
def fuzz_client() -> Iterator[Client]:
    """A Client of the fuzzers' own (its engine's counters are theirs alone), with the concept
    the bodies steer with. One llama.cpp thread: on a 2-core machine that others share, two
    threads' OpenMP barriers stall each decode for seconds whenever a core is taken."""
    with Client(threads=1) as client:
        client.create_steering_concept(SteeringConceptCreationRequest(CONCEPT_EXAMPLES))
        yield client


def assert_nothing_held(engine) -> None:
    """No request waits or runs, no sequence id is taken, no sequence holds KV cells."""
    stats = engine.stats()
    held = {key: stats[key] for key in ("requests_waiting", "requests_active", "sequence_ids_in_use",
                                         "sequences_with_cells")}
    assert held == dict.fromkeys(held, 0), held


# ---- tallies and rules --------------------------------------------------------------------------

class Hang(AssertionError):
    """A call that did not return within DEADLINE."""


def within(call: Callable[[], Any], seconds: float = DEADLINE) -> Any:
    """`call()` on a thread of its own, its result or its exception; Hang after `seconds`."""
    outcome: Dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # SystemExit of the CLI included
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise Hang(f"no answer within {seconds:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@dataclass
class Tally:
    """What one face answered: requests, accepted, refused, crashes, hangs."""

    face: str
    requests: int = 0
    accepted: int = 0
    refused: int = 0
    crashes: List[str] = field(default_factory=list)
    hangs: int = 0

    def crash(self, failure: str, detail: str) -> None:
        self.crashes.append(f"{failure}: {detail}"[:300])
        raise AssertionError(f"{self.face}: {failure}: {detail}"[:2000])

    def line(self) -> str:
        return (f"fuzz {self.face}: {self.requests} requests, {self.accepted} accepted, {self.refused} refused, "
                f"crashes {len(self.crashes)}, hangs {self.hangs}")

    def run(self, runs: Sequence[Callable[[], None]], capsys) -> None:
        """Run the hypothesis tests `runs` of this face, print its figures (also when one fails),
        and fail on any crash or hang."""
        try:
            for run in runs:
                run()
        finally:
            with capsys.disabled():
                print(f"\n{self.line()}")
        assert (self.crashes, self.hangs) == ([], 0)


def names_a_field(error: InvalidRequest, body: Any) -> bool:
    """`field` is a request field or one of its parts (`messages[0].role`), or the body's own
    key that is no field (an unknown field is refused by its name)."""
    name = error.field.split(".")[0].split("[")[0]
    return name in FIELD_NAMES | {"messages", "stream", "stream_options", "model"} or (
        isinstance(body, dict) and error.field in map(str, body))


def check_response(response: CompletionResponse, request: CompletionRequest) -> None:
    """A well-formed answer to `request` (which asked for at most MAX_TOKENS per candidate)."""
    candidates = max(request.n, request.best_of or 1)
    maximum = request.maximum_tokens
    assert isinstance(response, CompletionResponse)
    assert response.model_version == MODEL
    assert len(response.completions) == request.n, (len(response.completions), request.n)
    assert 0 <= response.num_tokens_generated <= candidates * maximum, response.num_tokens_generated
    assert response.num_tokens_prompt_total > 0 and response.num_tokens_prompt_total % candidates == 0
    generated = 0
    for result in response.completions:
        assert result.finish_reason in FINISH_REASONS, result.finish_reason
        assert isinstance(result.completion, str)
        assert (result.raw_completion is not None) >= bool(request.raw_completion)
        if maximum == 0:
            assert result.finish_reason == "maximum_tokens"
        if request.tokens:
            assert isinstance(result.completion_tokens, list)
        if request.log_probs is not None:
            assert isinstance(result.log_probs, list)
            assert all(len(entry) <= request.log_probs + 1 for entry in result.log_probs)
            if request.tokens:
                assert len(result.log_probs) == len(result.completion_tokens)
        if request.tokens and not request.echo:
            count = len(result.completion_tokens)
            generated += count
            assert count <= maximum
            assert result.finish_reason != "maximum_tokens" or count == maximum
    assert generated <= response.num_tokens_generated


def outcome_in_process(client: Any, body: Any) -> str:
    """Parse and complete `body` with the in-process Client: "accepted" or "refused"; anything
    but a refusal naming a field or a well-formed response raises."""
    try:
        request = CompletionRequest.from_json(body)
        response = client.complete(request, MODEL)
    except InvalidRequest as error:
        assert names_a_field(error, body), error.field
        return "refused"
    check_response(response, request)
    return "accepted"


def record(tally: Tally, body: Any, run: Callable[[], str]) -> None:
    """Count one request of `tally`'s face; anything but an answer or a refusal fails the test."""
    tally.requests += 1
    try:
        outcome = within(run)
    except Hang:
        tally.hangs += 1
        raise
    except AssertionError:
        raise
    except BaseException as error:
        tally.crash(type(error).__name__, f"{shown(error)} body={shown(body)}")
        return
    if outcome == "accepted":
        tally.accepted += 1
    else:
        tally.refused += 1


# ---- validation alone, without the model ---------------------------------------------------------

PARSED = Tally("validation (no model)")


@fuzz_settings(scaled(1500))
@given(reported(completion_bodies()))
def test_parsing_and_validation_refuse_only_naming_a_field(drawn):
    """from_json + check_request: a refusal names its field, whatever the body."""
    body = drawn.value
    def run() -> str:
        try:
            check_request(CompletionRequest.from_json(body))
        except InvalidRequest as error:
            assert names_a_field(error, body), error.field
            return "refused"
        return "accepted"
    record(PARSED, body, run)


def json_bytes(body: Any) -> bytes:
    """`body` as a client would send it: unpaired surrogates as \\u escapes, NaN and Infinity as
    Python writes them, integers of any length, nesting of any depth (json.dumps refuses the
    last two)."""
    out: List[str] = []
    stack: List[Any] = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, _Literal):
            out.append(item.text)
        elif isinstance(item, dict):
            stack.append(_Literal("}"))
            for index, (key, value) in enumerate(reversed(list(item.items()))):
                stack.append(value)
                stack.append(_Literal(json.dumps(str(key)) + ": "))
                if index < len(item) - 1:
                    stack.append(_Literal(", "))
            out.append("{")
        elif isinstance(item, (list, tuple)):
            stack.append(_Literal("]"))
            for index, value in enumerate(reversed(item)):
                stack.append(value)
                if index < len(item) - 1:
                    stack.append(_Literal(", "))
            out.append("[")
        elif type(item) is int:
            out.append(_digits(item))
        else:
            out.append(json.dumps(item))
    return "".join(out).encode("ascii")


@dataclass(frozen=True)
class _Literal:
    text: str


def _digits(number: int) -> str:
    """The decimal digits of an int of any length (str() stops at 4,300)."""
    if abs(number) < 10**4000:
        return str(number)
    rest, parts = abs(number), []
    while rest:
        rest, part = divmod(rest, 10**1000)
        parts.append(str(part).zfill(1000))
    return ("-" if number < 0 else "") + "".join(reversed(parts)).lstrip("0")
