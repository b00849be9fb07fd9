"""Images in chat messages: attached by path (F10, a dropped file's path, or a message that is a
path), previewed in half blocks, sent where the message stands in the conversation, stored with
the session; refused clearly on a model without a vision projector. UI behaviour over the
scripted backend; one conversation on the real engine with the synthetic projector."""

import base64
import io
import json
import sqlite3

import pytest
from PIL import Image as PILImage
from textual.events import Paste

from edgecomplete import ChatRequest, Client, Image, Message, Role
from edgecomplete.engine import LocalBackend
from tui import EdgeCompleteApp
from tui.attachments import dropped_path
from tui.config import Config
from tui.session import Session, Turn
from tui.store import Store
from tui.widgets import MessageView
from tui.widgets.image_preview import half_blocks

from ..conftest import MODEL
from ..fixtures.projector import write_projector
from .helpers import burst, drive, notes, send, shown, wait_until
from .scripted import ScriptedBackend


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "a photo.png"
    picture = PILImage.new("RGB", (40, 20), (200, 30, 30))
    picture.paste((30, 30, 200), (0, 0, 20, 10))
    picture.save(path)
    return path


def run_scripted(backend, tmp_path, scenario):
    app = EdgeCompleteApp(model="scripted", client=Client(backend=backend), data=tmp_path / "data", config=Config())
    return drive(app, scenario)


def test_half_blocks_show_two_pixels_a_cell_in_their_colours():
    picture = PILImage.new("RGB", (2, 2))
    for xy, colour in {(0, 0): (255, 0, 0), (1, 0): (0, 255, 0), (0, 1): (0, 0, 255), (1, 1): (9, 9, 9)}.items():
        picture.putpixel(xy, colour)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    text = half_blocks(base64.b64encode(buffer.getvalue()).decode())
    assert text.plain == "▀▀"
    assert [(span.style.color.triplet.hex, span.style.bgcolor.triplet.hex) for span in text.spans] == [
        ("#ff0000", "#0000ff"), ("#00ff00", "#090909")]
    wide = PILImage.new("RGB", (400, 100))
    buffer = io.BytesIO()
    wide.save(buffer, "PNG")
    lines = half_blocks(base64.b64encode(buffer.getvalue()).decode(), columns=32, rows=12).plain.split("\n")
    assert (len(lines), len(lines[0])) == (4, 32)  # 400x100 fitted into 32 columns: 32x8 pixels, 4 rows
    assert "cannot be shown" in half_blocks("bm90IGFuIGltYWdl").plain


def test_dropped_paths_as_terminals_paste_them(photo):
    assert dropped_path(str(photo)) == photo
    assert dropped_path(f"'{photo}'") == photo
    assert dropped_path(str(photo).replace(" ", "\\ ")) == photo
    assert dropped_path("file://" + str(photo).replace(" ", "%20")) == photo
    assert dropped_path(f"look at {photo}") is None and dropped_path(str(photo.with_suffix(".txt"))) is None


def test_attached_images_go_with_the_message_where_it_stands(tmp_path, photo):
    backend = ScriptedBackend(vision=True)

    async def scenario(pilot, app):
        chat = app.workspace.chat
        await pilot.press("f10")
        await pilot.pause(0.1)
        burst(app, str(photo), "enter")  # the path prompt, typed in one burst
        await wait_until(pilot, lambda: len(chat.attachments) == 1, what="the attachment")
        # the list refreshes on the next render: CI once read it empty right after the attachment
        await wait_until(pilot, lambda: "a photo.png" in shown(app.query_one("#attachments")), what="its name")
        assert "a photo.png" in shown(app.query_one("#attachments"))
        await send(pilot, app, "What is this?")
        assert not chat.attachments
        first = backend.requests[-1].prompt.items
        assert [type(item).__name__ for item in first] == ["Text", "Image", "Text"], first
        assert first[0].text.endswith("What is this?") and first[2].text.startswith("</user>"), (first[0], first[2], app.chat_session.turns[0])
        # The next turn: a file dropped on the terminal arrives as a paste of its path.
        app.query_one("#chat-input").focus()
        app.query_one("#chat-input").post_message(Paste(f"'{photo}'"))
        await wait_until(pilot, lambda: len(chat.attachments) == 1, what="the dropped image")
        assert app.query_one("#chat-input").text == ""
        await send(pilot, app, "And this one?")
        items = backend.requests[-1].prompt.items
        assert [type(item).__name__ for item in items] == ["Text", "Image", "Text", "Image", "Text"]
        assert items[1] == first[1] and app.chat_session.turns[2].images == [items[3].base_64]
        previews = [view for view in app.query(MessageView) if view.turn.images]
        assert len(previews) == 2 and "▀" in shown(previews[0])
        return app.chat_session

    session = run_scripted(backend, tmp_path, scenario)
    again = Session.from_json(json.loads(json.dumps(session.to_json())))
    assert [turn.images for turn in again.turns] == [turn.images for turn in session.turns]
    assert "[image 1: 40x20 PNG]" in session.to_markdown()


def test_a_message_that_is_a_path_attaches_the_image_in_one_burst(tmp_path, photo):
    backend = ScriptedBackend(vision=True)

    async def scenario(pilot, app):
        app.query_one("#chat-input").focus()
        burst(app, str(photo).replace(" ", "\\ "), "enter")
        await wait_until(pilot, lambda: len(app.workspace.chat.attachments) == 1, what="the attachment")
        assert not backend.requests and app.query_one("#chat-input").text == ""

    run_scripted(backend, tmp_path, scenario)


def test_a_model_without_a_projector_refuses_images(tmp_path, photo):
    async def scenario(pilot, app):
        app.workspace.chat.attach(str(photo))
        await wait_until(pilot, lambda: "no vision projector" in notes(app), what="the refusal")
        assert not app.workspace.chat.attachments
        app.workspace.chat.attach(str(tmp_path / "missing.png"))
        await pilot.pause(0.1)

    run_scripted(ScriptedBackend(vision=False), tmp_path, scenario)


def test_the_store_keeps_images_and_opens_older_stores(tmp_path):
    old = tmp_path / "old.sqlite3"
    database = sqlite3.connect(old)  # a store from before images: no images column
    database.executescript("""
        CREATE TABLE sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, title TEXT NOT NULL,
            model TEXT NOT NULL, system_prompt TEXT NOT NULL, params TEXT NOT NULL, buffer TEXT NOT NULL,
            updated REAL NOT NULL);
        CREATE TABLE turns (session_id INTEGER NOT NULL, position INTEGER NOT NULL, role TEXT NOT NULL,
            content TEXT NOT NULL, request TEXT, response TEXT, chosen INTEGER NOT NULL,
            stopped INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (session_id, position));
        INSERT INTO sessions VALUES (1, 'chat', 'old', 'm', '', '{}', '', 0);
        INSERT INTO turns VALUES (1, 0, 'user', 'hello', NULL, NULL, 0, 0);""")
    database.commit()
    database.close()
    store = Store(old)
    assert store.load(1).turns[0].images == []
    session = store.load(1)
    session.turns.append(Turn("user", "look", images=["aGVsbG8="]))
    store.save(session)
    assert store.load(1).turns[1].images == ["aGVsbG8="]
    store.close()


def test_a_chat_with_an_image_on_the_real_engine_is_the_clients_chat(tmp_path, photo, smollm2_path):
    projector = write_projector(tmp_path / "mmproj.gguf", scale=4.0)
    client = Client(backend=LocalBackend(projectors={MODEL: projector}))

    async def scenario(pilot, app):
        await pilot.press("ctrl+t")  # (the panel's temperature goes to 0 below)
        app.query_one("#param-temperature").value = "0"
        app.query_one("#param-maximum_tokens").value = "12"
        await pilot.pause(0.05)
        app.workspace.chat.attach(str(photo))
        await send(pilot, app, "What is in the picture?")
        return app.chat_session.turns[-1].content

    try:
        reply = drive(EdgeCompleteApp(model=MODEL, client=client, data=tmp_path / "data", config=Config()), scenario)
        expected = client.chat(ChatRequest(MODEL, [Message(Role.User, ["What is in the picture?",
                                                                       Image.from_file(photo)])],
                                           maximum_tokens=12, temperature=0.0), MODEL)
        assert reply == expected.message.content
    finally:
        client.close()
