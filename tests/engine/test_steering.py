"""Steering concepts on the real models: the concept steers held-out text the way its examples
do (and the other way with a negative strength) while neutral text stays likely; steered and
unsteered requests run together, each as alone; KV cells are shared only under the same vector;
bad input is refused and nothing is left half-written."""

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from edgecomplete import (AsyncClient, Client, CompletionRequest, InvalidRequest, Prompt,
                          SteeringConceptCreationRequest, SteeringPairedExample, Text, TokenizationRequest, Tokens)
from edgecomplete.engine import LocalBackend
from edgecomplete.steering import ConceptStore, concept_id

from ..conftest import MODEL

# negative -> positive sentiment (also bench.steering's); the first 12 make the concept, the last 8 are held out
PAIRS = [(p["negative"], p["positive"]) for p in map(json.loads, (Path(__file__).parents[1] / "fixtures" /
                                                                  "sentiment_pairs.jsonl").read_text().splitlines())]
TRAIN, HELD_OUT = PAIRS[:12], PAIRS[12:]
NEUTRAL = ["The train leaves the station at nine in the morning.",
           "Water boils at one hundred degrees Celsius at sea level.",
           "The museum is open from Tuesday to Sunday.", "A triangle has three sides and three angles.",
           "The report lists the sales figures for each region.", "The river flows north through the valley."]
PROMPT = "Here is a sentence:"


def examples(pairs):
    return [SteeringPairedExample(negative, positive) for negative, positive in pairs]


@pytest.fixture(scope="module")
def isolated(smollm2_path):
    """An engine of its own without prefix slots, for comparisons that must be exact: over an f16
    KV cache llama.cpp's attention over 512 cells or more rounds by the cache's size, and the
    session engine's slots hold what other tests left there (the default bf16 cache has no such
    limit; the comparisons hold over either)."""
    with Client(prefix_cache=False) as client:
        yield client


@pytest.fixture(scope="module")
def concept(client):
    return client.create_steering_concept(SteeringConceptCreationRequest(examples(TRAIN))).id


def mean_logprob(client, model, text, **steering):
    """Mean log-prob per token of ` text` after PROMPT: an echoed completion of nothing."""
    ids = client.tokenize(TokenizationRequest(" " + text, False, True), model).token_ids
    request = CompletionRequest(prompt=Prompt([Text(PROMPT, []), Tokens.from_token_ids(ids)]), maximum_tokens=0,
                                echo=True, log_probs=0, tokens=True, **steering)
    (result,) = client.complete(request, model).completions
    entries, tokens = result.log_probs[-len(ids):], result.completion_tokens[-len(ids):]
    return float(np.mean([entry[token] for token, entry in zip(tokens, entries)]))


def effect(client, model, **steering):
    """(held-out positive minus negative, neutral), mean log-probs per token."""
    gap = np.mean([mean_logprob(client, model, p, **steering) - mean_logprob(client, model, n, **steering)
                   for n, p in HELD_OUT])
    neutral = np.mean([mean_logprob(client, model, t, **steering) for t in NEUTRAL])
    return gap, neutral


def check_it_steers(client, model, concept):
    base_gap, base_neutral = effect(client, model)
    gap, neutral = effect(client, model, steering_concepts=[concept])
    flipped, _ = effect(client, model, steering_concepts=[concept], steering_strengths={concept: -1.0})
    # Measured here: the gap rises by about 1 nat per token (1.07 to 1.37) and falls by 0.77 to
    # 1.05 with the sign flipped; the margins below leave most of that to another CPU's rounding.
    assert gap - base_gap > 0.4, (base_gap, gap)
    assert base_gap - flipped > 0.3, (base_gap, flipped)
    # Fluency: neutral text loses less than 0.3 nats per token (measured 0.05 to 0.17): the
    # model still writes ordinary sentences, only with another slant.
    assert base_neutral - neutral < 0.3, (base_neutral, neutral)


def test_a_concept_steers_held_out_text_smollm2(client, concept):
    check_it_steers(client, MODEL, concept)


@pytest.mark.slow
def test_a_concept_steers_held_out_text_gemma(client, concept):
    from edgecomplete import models
    models.pull("gemma-3-270m")
    check_it_steers(client, "gemma-3-270m", concept)


def test_the_id_is_the_examples_and_the_concept_is_kept(client, concept, data_folder, tmp_path):
    assert concept == concept_id(examples(TRAIN)) and len(concept) == 64
    again = client.create_steering_concept(SteeringConceptCreationRequest(examples(TRAIN))).id
    assert again == concept  # idempotent
    stored = json.loads((data_folder / "steering" / f"{concept}.json").read_text())
    assert [(e["negative"], e["positive"]) for e in stored["examples"]] == TRAIN
    client.complete(CompletionRequest(prompt=Prompt.from_text("Hi"), maximum_tokens=1,
                                      steering_concepts=[concept]), MODEL)
    (vectors,) = (data_folder / "steering" / concept).glob(f"{MODEL}-*.npy")
    assert np.load(vectors).shape[0] == client.model_info(MODEL)["layers"]
    assert not list((data_folder / "steering").rglob("*.part"))
    # another engine (a restart) reads the vectors back instead of making them again, and steers
    # as an engine that makes them from the examples does
    made_at = vectors.stat().st_mtime_ns
    request = CompletionRequest(prompt=Prompt.from_text("My day was"), maximum_tokens=8, steering_concepts=[concept])
    with Client(backend=LocalBackend(prefix_cache=False, concepts=ConceptStore(data_folder / "steering"))) as fresh:
        read_back = fresh.complete(request, MODEL)
    assert vectors.stat().st_mtime_ns == made_at
    with Client(backend=LocalBackend(prefix_cache=False, concepts=ConceptStore(tmp_path / "empty"))) as maker:
        maker.create_steering_concept(SteeringConceptCreationRequest(examples(TRAIN)))
        assert read_back == maker.complete(request, MODEL)


def test_steered_and_unsteered_requests_together_each_as_alone(isolated, concept):
    client = isolated
    requests = [
        CompletionRequest(prompt=Prompt.from_text("My opinion of the restaurant:"), maximum_tokens=24),
        CompletionRequest(prompt=Prompt.from_text("My opinion of the restaurant:"), maximum_tokens=24,
                          steering_concepts=[concept]),
        CompletionRequest(prompt=Prompt.from_text("The weekend was"), maximum_tokens=20, temperature=0.8, seed=3,
                          steering_concepts=[concept], steering_strengths={concept: -1.5}),
        CompletionRequest(prompt=Prompt.from_text("The weekend was"), maximum_tokens=20, temperature=0.8, seed=3,
                          n=2),
    ]
    alone = [client.complete(request, MODEL) for request in requests]

    async def together():
        async with AsyncClient(client=client) as aclient:
            return await asyncio.gather(*(aclient.complete(request, MODEL) for request in requests))

    assert asyncio.run(together()) == alone
    assert alone[0].completions[0].completion != alone[1].completions[0].completion  # it does steer


def test_kv_cells_are_reused_only_under_the_same_steering(client, engine, concept):
    prompt = "A long shared beginning of a prompt, about a harbour town and its old lighthouse keeper,"
    plain = CompletionRequest(prompt=Prompt.from_text(prompt + " who"), maximum_tokens=2)
    steered = CompletionRequest(prompt=Prompt.from_text(prompt + " whose"), maximum_tokens=2,
                                steering_concepts=[concept])
    client.complete(plain, MODEL)
    before = engine.stats()["prompt_tokens_reused"]
    client.complete(steered, MODEL)  # the same beginning, computed without the vector: not reused
    assert engine.stats()["prompt_tokens_reused"] == before
    client.complete(CompletionRequest(prompt=Prompt.from_text(prompt + " whom"), maximum_tokens=2,
                                      steering_concepts=[concept]), MODEL)
    assert engine.stats()["prompt_tokens_reused"] > before  # under the same vector: reused


@pytest.mark.parametrize("pairs,field", [
    ([], "examples"),
    ([("", "Nice.")], "examples[0].negative"),
    ([("Bad.", "   ")], "examples[0].positive"),
    ([("Same.", "Same.")], "examples[0]"),
])
def test_bad_examples_are_refused_and_nothing_is_written(client, data_folder, pairs, field):
    before = sorted((data_folder / "steering").rglob("*")) if (data_folder / "steering").exists() else []
    with pytest.raises(InvalidRequest) as error:
        client.create_steering_concept(SteeringConceptCreationRequest(examples(pairs)))
    assert error.value.field == field
    after = sorted((data_folder / "steering").rglob("*")) if (data_folder / "steering").exists() else []
    assert after == before


@pytest.mark.parametrize("fields,says", [
    (dict(steering_concepts=["0" * 64]), "steering_concepts: unknown steering concept"),
    (dict(steering_concepts=["not-an-id"]), "steering_concepts: 'not-an-id' is not a concept id"),
    (dict(steering_concepts=["0" * 64], steering_strengths={"1" * 64: 1.0}), "steering_strengths: "),
    (dict(steering_concepts=["0" * 64], steering_strengths={"0" * 64: 99.0}), "steering_strengths: "),
])
def test_bad_steering_in_a_request_is_refused(client, fields, says):
    with pytest.raises(InvalidRequest, match=f"^{says}"):
        client.complete(CompletionRequest(prompt=Prompt.from_text("Hi"), maximum_tokens=1, **fields), MODEL)
    assert client.complete(CompletionRequest(prompt=Prompt.from_text("Hi"), maximum_tokens=1), MODEL)



def test_export_is_a_llama_cpp_control_vector_and_imports_back(client, concept, tmp_path):
    import gguf

    backend = client.backend
    path = tmp_path / "sentiment.gguf"
    backend.export_steering_concept(concept, MODEL, path)
    # What llama.cpp's control-vector loader requires (common_control_vector_load_one).
    reader = gguf.GGUFReader(str(path))
    assert bytes(reader.fields["general.architecture"].parts[-1]).decode() == "controlvector"
    info = client.model_info(MODEL)
    layers = sorted(int(t.name.split(".")[1]) for t in reader.tensors)
    assert all(t.name.startswith("direction.") and t.tensor_type == gguf.GGMLQuantizationType.F32
               and np.asarray(t.data).shape == (client.backend.engine(MODEL).model.embedding_size,)
               for t in reader.tensors)
    assert layers and layers[0] >= 1 and layers[-1] < info["layers"]  # direction.0 is refused by the loader
    imported = backend.import_steering_concept(path, MODEL)
    assert len(imported) == 64 and imported != concept

    def echoed(concept_id):
        request = CompletionRequest(prompt=Prompt.from_text("The meal was fine and the staff were there."),
                                    maximum_tokens=0, echo=True, log_probs=0, steering_concepts=[concept_id])
        (result,) = client.complete(request, MODEL).completions
        return [value for entry in result.log_probs[1:] for value in entry.values()]

    assert echoed(imported) == pytest.approx(echoed(concept), abs=1e-3)  # the same steering
    (tmp_path / "bad.gguf").write_bytes(b"GGUF" + b"\0" * 20)
    with pytest.raises(InvalidRequest, match="^path: "):
        backend.import_steering_concept(tmp_path / "bad.gguf", MODEL)


@pytest.mark.slow
def test_an_imported_vector_belongs_to_its_model_only(client, concept, tmp_path):
    from edgecomplete import models

    models.pull("gemma-3-270m")
    client.backend.export_steering_concept(concept, MODEL, tmp_path / "smollm2.gguf")
    imported = client.backend.import_steering_concept(tmp_path / "smollm2.gguf", MODEL)
    with pytest.raises(InvalidRequest, match="has no vectors for gemma-3-270m"):
        client.complete(CompletionRequest(prompt=Prompt.from_text("Hi"), maximum_tokens=1,
                                          steering_concepts=[imported]), "gemma-3-270m")
    with pytest.raises(InvalidRequest, match="embedding size"):  # 576 values for a model of 640
        client.backend.import_steering_concept(tmp_path / "smollm2.gguf", "gemma-3-270m")


def test_texts_of_different_lengths_do_not_carry_the_attention_sink_into_the_direction(client, concept, data_folder):
    # "dirty." is 2 tokens and "spotless." 3: with the first position (the attention sink, whose
    # activations are hundreds of times larger) in the means, this concept's directions came out
    # ten times longer than a well-made concept's, and steered text degenerated into quotes.
    short = client.create_steering_concept(SteeringConceptCreationRequest(examples(
        [("The room was dirty.", "The room was spotless."), ("I hated it.", "I loved it.")]))).id
    for identifier in (short, concept):
        client.complete(CompletionRequest(prompt=Prompt.from_text("Hi"), maximum_tokens=1,
                                          steering_concepts=[identifier]), MODEL)
    (short_vectors,) = (data_folder / "steering" / short).glob(f"{MODEL}-*.npy")
    (vectors,) = (data_folder / "steering" / concept).glob(f"{MODEL}-*.npy")
    short_norms, norms = np.linalg.norm(np.load(short_vectors), axis=1), np.linalg.norm(np.load(vectors), axis=1)
    assert short_norms.max() < 3 * norms.max(), (short_norms.max(), norms.max())  # was 4.8x


def test_several_concepts_add_up(isolated, concept):
    client = isolated
    # The same pairs the other way round make exactly the opposite direction: together they
    # add up to nothing, and the request decodes as an unsteered one.
    reverse = client.create_steering_concept(SteeringConceptCreationRequest(
        examples([(positive, negative) for negative, positive in TRAIN]))).id
    prompt = Prompt.from_text("The weather today")
    plain = client.complete(CompletionRequest(prompt=prompt, maximum_tokens=12, log_probs=0), MODEL)
    both = client.complete(CompletionRequest(prompt=prompt, maximum_tokens=12, log_probs=0,
                                             steering_concepts=[concept, reverse]), MODEL)
    one = client.complete(CompletionRequest(prompt=prompt, maximum_tokens=12, log_probs=0,
                                            steering_concepts=[concept]), MODEL)
    assert both == plain and one != plain
