"""What the UI tests share: driving an app through a scenario, waiting for it, typing into it,
reading what it shows."""

import asyncio

from textual import events
from textual.keys import _character_to_key
from textual.widgets import Input


def drive(app, scenario, size=(120, 36), loaded=True):
    """Run `await scenario(pilot, app)` in `app`, headless (Textual's run_test at `size`), and
    return what it returns: the one async wrapper every UI test goes through. `loaded`: first
    wait until the model has loaded (an app of the UI; a bare host app has none)."""
    async def run():
        async with app.run_test(size=size) as pilot:
            if loaded:
                await ready(pilot, app)
            return await scenario(pilot, app)
    return asyncio.run(run())


async def wait_until(pilot, condition, timeout=60.0, what="condition"):
    """Let the app run until `condition()` holds (no fixed sleeps)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def ready(pilot, app):
    await wait_until(pilot, lambda: app.stats.context_length > 0, what="the model to load")


def burst(app, text, *keys):
    """Deliver the characters of `text`, then `keys`, the way a terminal delivers a paste or
    `tmux send-keys`: all in the app's queue at once, before the focused input has handled the
    first of them (Pilot's `press` lets the app handle each key before it sends the next)."""
    events_ = [events.Key(_character_to_key(c), c) for c in text] + [events.Key(key, None) for key in keys]
    for event in events_:
        event.set_sender(app)
        app.post_message(event)


def shown(widget) -> str:
    """The text a widget shows on screen, without its border."""
    return "\n".join(line.text.strip("█▊▌▐ ") for line in widget.render_lines(widget.outer_size.region))


def words(text: str) -> str:
    return " ".join(text.split())


def set_param(app, name, value):
    app.query_one(f"#param-{name}", Input).value = value


async def send(pilot, app, text):
    """Send `text` in the chat and wait for the whole reply."""
    chat_input = app.query_one("#chat-input")
    chat_input.focus()
    chat_input.load_text(text)
    turns = len(app.chat_session.turns)
    await pilot.press("enter")
    await wait_until(pilot, lambda: len(app.chat_session.turns) == turns + 2 and not app.view.generating,
                     what="the reply")
    await pilot.pause(0.05)


def notes(app):
    """The notifications the app has shown, as one text."""
    return " | ".join(str(n.message) for n in app._notifications)
