"""Images over HTTP, against a real `edgecomplete serve --mmproj` (the synthetic projector of
tests/fixtures/projector.py): Aleph `image` prompt items from the official aleph-alpha-client,
chat messages with images from it (pillow images, sent as data URIs) and from the openai client
(`image_url` data URIs) get what the in-process Client computes with the same projector; what
cannot be done is refused with a 400 naming the field, and the server fetches nothing."""

import base64
import io
import json

import aleph_alpha_client as aleph
import aleph_alpha_client.chat as aleph_chat
import openai
import pytest
from PIL import Image as PILImage

from edgecomplete import ChatRequest, Client, CompletionRequest, Image, Message, Prompt, Role, Text

from ..conftest import MODEL
from ..fixtures.projector import write_projector
from .conftest import TOKEN, raw, start_server, stop_server

SQUARES = PILImage.new("RGB", (40, 40), (200, 40, 40))
SQUARES.paste((40, 40, 200), (0, 0, 20, 20))


def png(image=SQUARES) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def data_uri(image=SQUARES) -> str:
    return "data:image/png;base64," + base64.b64encode(png(image)).decode()


@pytest.fixture(scope="module")
def projector(tmp_path_factory):
    return write_projector(tmp_path_factory.mktemp("vision") / "mmproj.gguf", scale=4.0)


@pytest.fixture(scope="module")
def vision_server(smollm2_path, projector):
    process, url = start_server("--token", TOKEN, "--mmproj", str(projector))
    yield url
    stop_server(process)


@pytest.fixture(scope="module")
def local(projector):
    with Client(mmproj={MODEL: projector}) as client:
        yield client


def test_aleph_image_items_complete_as_in_process(vision_server, local):
    remote = aleph.Client(token=TOKEN, host=f"{vision_server}/v1", total_retries=0)
    (model,) = remote.models()
    assert model["image_support"] is True
    prompt = aleph.Prompt([aleph.Text.from_text("Look:"), aleph.Image.from_bytes(png()), aleph.Text.from_text(" It is")])
    over_http = remote.complete(aleph.CompletionRequest(prompt=prompt, maximum_tokens=10, log_probs=2, tokens=True),
                                model=MODEL)
    here = local.complete(CompletionRequest(prompt=Prompt([Text.from_text("Look:"), Image.from_bytes(png()),
                                                           Text.from_text(" It is")]),
                                            maximum_tokens=10, log_probs=2, tokens=True), MODEL)
    assert over_http.completions[0].completion == here.completions[0].completion
    assert over_http.completions[0].log_probs == here.completions[0].log_probs
    assert over_http.num_tokens_prompt_total == here.num_tokens_prompt_total


def test_chat_with_an_image_from_both_clients_answers_as_in_process(vision_server, local):
    here = local.chat(ChatRequest(model=MODEL, messages=[Message(Role.User, ["What is in this picture? ", SQUARES])],
                                  maximum_tokens=12, temperature=0.0), MODEL).message.content
    remote = aleph.Client(token=TOKEN, host=f"{vision_server}/v1", total_retries=0)
    aleph_message = aleph_chat.Message(role=aleph_chat.Role.User, content=["What is in this picture? ", SQUARES])
    over_aleph = remote.chat(aleph_chat.ChatRequest(model=MODEL, messages=[aleph_message], maximum_tokens=12,
                                                    temperature=0.0), model=MODEL)
    assert over_aleph.message.content == here
    openai_client = openai.OpenAI(base_url=f"{vision_server}/v1", api_key=TOKEN, max_retries=0)
    answer = openai_client.chat.completions.create(model=MODEL, max_tokens=12, temperature=0, messages=[
        {"role": "user", "content": [{"type": "text", "text": "What is in this picture? "},
                                     {"type": "image_url", "image_url": {"url": data_uri()}}]}],
        logprobs=True, top_logprobs=2)
    assert answer.choices[0].message.content == here
    other = openai_client.chat.completions.create(model=MODEL, max_tokens=12, temperature=0, messages=[
        {"role": "user", "content": [{"type": "text", "text": "What is in this picture? "},
                                     {"type": "image_url", "image_url": {"url": data_uri(SQUARES.rotate(90))}}]}],
        logprobs=True, top_logprobs=2)
    assert other.choices[0].logprobs.content != answer.choices[0].logprobs.content  # another image, other logits


def test_what_cannot_be_done_with_images_is_a_400_naming_the_field(vision_server):
    def post(path, body):
        return raw(vision_server, "POST", path, json.dumps(body).encode())

    url_image = {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://example.com/cat.png"}}]}]}
    status, body, _ = post("/v1/chat/completions", url_image)
    assert status == 400 and "only data: URIs" in body["error"]["message"]
    status, body, _ = post("/v1/chat/completions", {**url_image, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}}]}]})
    assert status == 400 and "not an image" in body["error"]["message"]
    image_item = {"type": "image", "data": base64.b64encode(png()).decode()}
    status, body, _ = post("/complete", {"model": MODEL, "prompt": [image_item], "maximum_tokens": 3, "echo": True})
    assert status == 400 and body["code"] == "INVALID_REQUEST" and "echo" in body["error"]
    status, body, _ = post("/complete", {"model": MODEL, "prompt": [{**image_item, "x": 30, "y": 0, "size": 20}],
                                         "maximum_tokens": 3})
    assert status == 400 and "cropping" in body["error"]
    status, body, _ = post("/complete", {"model": MODEL, "prompt": [{**image_item, "x": 10, "y": 10, "size": 20}],
                                         "maximum_tokens": 3})
    assert status == 200 and body["completions"][0]["completion"] is not None  # and it keeps serving
