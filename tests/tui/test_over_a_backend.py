"""The terminal UI over a scripted Backend (tests/tui/scripted.py): the UI stands on the seam
only, so its behaviour is tested here without a model: what it sends, how it streams, stops,
and shows a backend's refusal."""

import pytest

from edgecomplete import Client, InvalidRequest
from tui import EdgeCompleteApp
from tui.config import Config
from tui.screens import SteeringPicker
from tui.widgets import MessageView

from .helpers import drive, notes, send, set_param, shown, wait_until, words
from .scripted import ScriptedBackend


@pytest.fixture
def scripted():
    return ScriptedBackend()


@pytest.fixture
def run_scripted(scripted, tmp_path):
    def run(scenario, size=(120, 36)):
        app = EdgeCompleteApp(model="scripted", client=Client(backend=scripted), data=tmp_path / "data",
                              config=Config())
        return drive(app, scenario, size)
    return run


def test_a_chat_turn_sends_the_panels_request_in_the_chat_format(run_scripted, scripted):
    async def scenario(pilot, app):
        set_param(app, "maximum_tokens", "40")
        set_param(app, "stop_sequences", r"\n\n | END")
        await pilot.pause(0.05)
        await send(pilot, app, "Hello there")
        request = scripted.requests[-1]
        assert request.prompt.items[0].text == "<user>Hello there</user>\n<assistant>"
        assert request.maximum_tokens == 40 and request.stop_sequences == ["\n\n", "END"]
        assert request.temperature == 0.7 and request.seed is not None  # chat default; seed drawn to replay
        reply = app.chat_session.turns[1]
        assert reply.content == scripted.reply and reply.response is not None
        assert words(scripted.reply) in words(shown(list(app.query(MessageView))[-1]))
    run_scripted(scenario)


def test_escape_stops_a_reply_and_the_stream_is_closed_at_the_backend(run_scripted, scripted):
    async def scenario(pilot, app):
        scripted.hold()
        app.query_one("#chat-input").focus()
        app.query_one("#chat-input").load_text("Go on")
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(app.chat_session.turns) == 2 and app.chat_session.turns[1].content,
                         what="the first words")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.view.generating, timeout=5, what="the stop")
        reply = app.chat_session.turns[1]
        assert reply.stopped and reply.response is None
        assert scripted.reply.startswith(reply.content) and reply.content != scripted.reply
        await wait_until(pilot, lambda: scripted.closed_streams == 1, timeout=5, what="the stream to close")
        scripted.release()
        await send(pilot, app, "Again")
        assert app.chat_session.turns[-1].content == scripted.reply
    run_scripted(scenario)


def test_a_backends_refusal_is_shown_and_the_message_kept(run_scripted, scripted):
    async def scenario(pilot, app):
        scripted.refusal = InvalidRequest("maximum_tokens", "does not fit the remote model's context")
        app.query_one("#chat-input").focus()
        app.query_one("#chat-input").load_text("Too long")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "does not fit" in notes(app), timeout=5, what="the refusal")
        assert not app.view.generating
        await send(pilot, app, "Shorter")
        assert app.chat_session.turns[-1].content == scripted.reply
    run_scripted(scenario)


def test_the_steering_screen_makes_a_concept_switches_it_on_and_the_chat_sends_it(run_scripted, scripted):
    async def scenario(pilot, app):
        await pilot.press("f9")
        await wait_until(pilot, lambda: isinstance(app.screen, SteeringPicker), what="the steering screen")
        screen = app.screen
        screen.query_one("#pairs").load_text("I hated it. => I loved it.\nnot a pair")
        screen.query_one("#create").press()
        await wait_until(pilot, lambda: "line 2 is not" in str(screen.query_one("#steering-status").render()),
                         what="the bad line named")
        screen.query_one("#pairs").load_text("I hated it. => I loved it.\nIt was dull. => It was thrilling.")
        screen.query_one("#create").press()
        await wait_until(pilot, lambda: len(scripted.concepts) == 1, what="the concept")
        (concept,) = scripted.concepts
        await wait_until(pilot, lambda: screen.query_one("#concept-list").option_count == 1, what="the list")
        assert screen.chosen == [concept]  # a new concept is on at once
        await pilot.pause()  # the rebuilt list's highlight shows its strength (1) first: not after ours
        screen.query_one("#strength").focus()
        screen.query_one("#strength").value = "-1.5"
        await wait_until(pilot, lambda: screen.strengths.get(concept) == -1.5, what="the strength taken")
        await pilot.press("enter")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, SteeringPicker), what="the screen to close")
        panel = app.workspace.panel
        assert panel.values()["steering_concepts"] == [concept]
        assert panel.values()["steering_strengths"] == {concept: -1.5}
        await send(pilot, app, "How was it?")
        request = scripted.requests[-1]
        assert request.steering_concepts == [concept] and request.steering_strengths == {concept: -1.5}
        # switched off again: the next reply is not steered
        await pilot.press("f9")
        await wait_until(pilot, lambda: isinstance(app.screen, SteeringPicker), what="the steering screen")
        await wait_until(pilot, lambda: app.screen.query_one("#concept-list").option_count == 1, what="the list")
        app.screen.query_one("#concept-list").focus()
        await pilot.press("enter")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, SteeringPicker), what="the screen to close")
        assert app.workspace.panel.values()["steering_concepts"] is None
    run_scripted(scenario)
