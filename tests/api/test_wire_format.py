"""JSON shapes: the recorded Aleph Alpha requests and responses round-trip through our classes."""

import json
from pathlib import Path

import pytest
import yaml

from edgecomplete import (
    CompletionRequest,
    CompletionResponse,
    CompletionSummary,
    Image,
    ImageControl,
    Prompt,
    StreamChunk,
    StreamSummary,
    Text,
    TextControl,
    TokenControl,
    Tokens,
    stream_item_from_json,
)
from edgecomplete.prompt import ControlTokenOverlap, Cropping

# Real API traffic recorded with the Aleph Alpha client (copied from the team's shared fixtures).
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aleph-wire"
CASSETTES = sorted(FIXTURES.glob("*.yaml"))


def interactions():
    for path in CASSETTES:
        for interaction in yaml.safe_load(path.read_text())["interactions"]:
            yield pytest.param(interaction, id=path.stem)


def body(request_or_response):
    value = request_or_response["body"]
    return json.loads(value) if isinstance(value, str) else value


def test_fixtures_are_present():
    assert len(CASSETTES) == 8, f"expected the recorded fixtures in {FIXTURES}"


@pytest.mark.parametrize("interaction", list(interactions()))
def test_request_round_trips(interaction):
    recorded = body(interaction["request"])
    request = CompletionRequest.from_json(recorded)
    sent = json.loads(json.dumps(request.to_json()))
    expected = {k: v for k, v in recorded.items() if k not in ("model", "stream")}
    assert sent == expected


@pytest.mark.parametrize("interaction", list(interactions()))
def test_response_round_trips(interaction):
    raw = interaction["response"]["body"]["string"]
    if raw.startswith("data: "):
        events = [json.loads(line[len("data: "):]) for line in raw.splitlines() if line.startswith("data: ")]
        items = [stream_item_from_json(event) for event in events]
        assert [type(item) for item in items] == [StreamChunk, StreamSummary, CompletionSummary]
        assert [item.to_json() for item in items] == events
    else:
        recorded = json.loads(raw)
        response = CompletionResponse.from_json(recorded)
        assert json.loads(json.dumps(response.to_json())) == recorded


def test_to_json_drops_none_and_keeps_seed_only_when_set():
    request = CompletionRequest(prompt=Prompt.from_text("x"))
    payload = request.to_json()
    assert "seed" not in payload and "maximum_tokens" not in payload and "best_of" not in payload
    assert CompletionRequest(prompt=Prompt.from_text("x"), seed=7).to_json()["seed"] == 7
    assert CompletionRequest.from_json(CompletionRequest(prompt=Prompt.from_text("x"), seed=7).to_json()).seed == 7


def test_every_prompt_item_round_trips():
    prompt = Prompt([
        Text("a", [TextControl(1, 2, 0.5, ControlTokenOverlap.Complete)]),
        Tokens([1, 2, 3], [TokenControl(pos=1, factor=2.0)]),
        Image("aGVsbG8=", Cropping(1, 2, 3), [ImageControl(0.1, 0.2, 0.3, 0.4, 1.5, ControlTokenOverlap.Partial)]),
        Image.from_bytes(b"png"),
    ])
    assert Prompt.from_json(json.loads(json.dumps(prompt.to_json()))) == prompt


def test_unknown_request_fields_and_prompt_items_are_named():
    with pytest.raises(ValueError, match="maximum_tokenz"):
        CompletionRequest.from_json({"prompt": [], "maximum_tokenz": 3})
    with pytest.raises(ValueError, match="unknown item type 'audio'"):
        Prompt.from_json([{"type": "audio", "data": ""}])


def test_prompt_from_string_and_frozen_classes():
    assert Prompt("hi") == Prompt([Text("hi", [])])
    with pytest.raises(AttributeError):
        CompletionRequest(prompt=Prompt("x")).temperature = 1.0  # frozen
