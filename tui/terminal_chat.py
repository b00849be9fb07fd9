"""`edgecomplete chat`: a conversation in the terminal without the full UI, like `ollama run`.

Messages are read with line editing and history (readline), or line by line from stdin when it is
not a terminal (scripts); replies stream as they are generated, through the public Client API.
Ctrl+C stops a reply and keeps the conversation; Ctrl+D or /exit ends it. The conversation is
saved in the terminal UI's store as a chat session, so the UI lists it.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, List, Optional

from edgecomplete import (
    Client,
    CompletionRequest,
    NoChatTemplateError,
    Prompt,
    StreamChunk,
    check_request,
    fold_stream,
    with_drawn_seed,
)

from edgecomplete.prompt import with_images

from .attachments import conversation, read_image
from .config import data_dir
from .session import Session, Turn, image_size
from .store import STORE_FILE, Store

COMMANDS = {
    "/help": "these commands",
    "/temperature X": "temperature of the next replies (0: greedy)",
    "/max-tokens N": "tokens per reply at most",
    "/system TEXT": "the system prompt (none without TEXT)",
    "/image PATH": "an image for the next message (a model with a vision projector: --mmproj)",
    "/clear": "a new conversation",
    "/regenerate": "a new reply in place of the last one",
    "/exit": "quit (also Ctrl+D)",
}


def run_chat(model: str, system: str, params: Dict[str, Any], *, engine: Optional[Dict[str, Any]] = None,
             mmproj: Optional[str] = None, remote: Optional[Dict[str, Any]] = None) -> int:
    """Chat with `model` (its vision projector `mmproj`, if given) until /exit or the end of
    input; `params` are CompletionRequest fields (maximum_tokens, temperature); `engine` are the
    local engine's Client options (context_length, threads, ...). Returns the exit status."""
    with Client(**(engine or {}), mmproj={model: mmproj} if mmproj else None,
                **(remote or {})) as client:
        if not client.model_info(model)["chat"]:
            raise NoChatTemplateError(
                f"{model} has no chat template (a base model, not tuned for chat); continue text with it "
                f'instead: edgecomplete complete "TEXT" --model {model}')
        store = Store(data_dir() / STORE_FILE)
        try:
            return TerminalChat(client, model, store, system, params, sys.stdin.isatty()).run()
        finally:
            store.close()


class TerminalChat:
    """One conversation (a tui.session.Session of kind "chat"), saved after every turn."""

    def __init__(self, client: Client, model: str, store: Store, system: str, params: Dict[str, Any],
                 interactive: bool):
        self.client = client
        self.model = model
        self.store = store
        self.interactive = interactive
        self.session = self._new_session(system, params)
        self.refused = False  # a message or command was refused (exit status 2)
        self.images: List[str] = []  # base64 images for the next message (/image)
        self.commands: Dict[str, Callable[[str], bool]] = {
            "/help": self._help, "/temperature": self._temperature, "/max-tokens": self._max_tokens,
            "/system": self._system, "/clear": self._clear, "/regenerate": self._regenerate, "/image": self._image,
            "/exit": lambda _: False,
        }

    def _new_session(self, system: str, params: Dict[str, Any]) -> Session:
        return Session("chat", self.model, system_prompt=system, params=dict(params))

    def run(self) -> int:
        if self.interactive:
            try:
                import readline  # noqa: F401  (input() then edits lines and keeps a history)
            except ImportError:  # not on every platform
                pass
            self._say(f"Chat with {self.model}. /help lists the commands; Ctrl+D or /exit quits.")
        while (line := self._read()) is not None:
            text = line.strip()
            if not text:
                continue
            if text.startswith("/"):
                if not self._command(text):
                    break
                continue
            self.session.turns.append(Turn("user", text, images=self.images))
            if self._reply():
                self.images = []
            else:
                self.session.turns.pop()  # refused: the conversation stays as it was (its images wait)
            self._save()
        return 2 if self.refused else 0

    def _read(self) -> Optional[str]:
        """The next line; None at the end of input (Ctrl+D)."""
        while True:
            try:
                if self.interactive:
                    return input(">>> ")
                line = sys.stdin.readline()
                return line if line else None
            except EOFError:
                print(file=sys.stderr)
                return None
            except KeyboardInterrupt:
                print(file=sys.stderr)
                self._say("(Ctrl+D or /exit quits)")

    def _say(self, text: str) -> None:
        """Notes and command feedback go to stderr: stdout carries the replies alone."""
        print(text, file=sys.stderr, flush=True)

    def _refuse(self, text: str) -> None:
        self.refused = True
        self._say(f"edgecomplete: error: {text}")

    # ---- replies --------------------------------------------------------------------------------

    def _request(self) -> CompletionRequest:
        """The next reply's request: the conversation in the model's chat format, sent as rendered
        (its final newline matters), with tokens for the terminal UI's token view; a sampled
        request gets its seed here, so that the stored request replays it exactly."""
        session = self.session
        messages, images = conversation(session)
        prompt = self.client.apply_chat_template(self.model, messages)
        request = CompletionRequest(prompt=with_images(prompt, images), disable_optimizations=True, tokens=True,
                                    **session.params)
        return with_drawn_seed(request)

    def _reply(self) -> bool:
        """Stream the reply to the conversation so far and add it as a turn; False if refused.
        Ctrl+C stops it: the reply stays as far as it got, marked as stopped."""
        try:
            request = self._request()
            stream = self.client.complete_with_streaming(request, model=self.model)
        except ValueError as error:  # the API's validation message
            self._refuse(str(error))
            return False
        turn = Turn("assistant", "", request=request.to_json())
        items: List = []
        try:
            for item in stream:
                items.append(item)
                if isinstance(item, StreamChunk) and item.completion:
                    turn.content += item.completion
                    sys.stdout.write(item.completion)
                    sys.stdout.flush()
        except KeyboardInterrupt:
            turn.stopped = True
        finally:
            stream.close()  # stops the generation
        print("\n" if self.interactive else "", flush=True)
        if turn.stopped:
            self._say("(stopped)")
        else:
            response = fold_stream(items)
            turn.response = response.to_json()
            if response.completions[0].finish_reason == "maximum_tokens":
                self._say(f"(cut at {request.maximum_tokens} tokens: /max-tokens N allows longer replies)")
        self.session.turns.append(turn)
        return True

    def _save(self) -> None:
        if self.session.turns:
            self.store.save(self.session)

    # ---- commands -------------------------------------------------------------------------------

    def _command(self, text: str) -> bool:
        """Run a /command; False ends the chat."""
        name, _, argument = text.partition(" ")
        command = self.commands.get(name)
        if command is None:
            self._refuse(f"unknown command {name}; /help lists the commands")
            return True
        return command(argument.strip())

    def _help(self, _: str) -> bool:
        width = max(map(len, COMMANDS))
        self._say("\n".join(f"{usage:<{width}}  {meaning}" for usage, meaning in COMMANDS.items()))
        return True

    def _set(self, field: str, text: str, kind: type, command: str) -> bool:
        """Set a request field of the next replies, checked as the API checks it."""
        try:
            value = kind(text)
        except ValueError:
            self._refuse(f"{command} needs {'an integer' if kind is int else 'a number'}, got {text!r}")
            return True
        params = {**self.session.params, field: value}
        try:
            check_request(CompletionRequest(prompt=Prompt.from_text(""), **params))
        except ValueError as error:
            self._refuse(str(error))
            return True
        self.session.params = params
        self._save()
        self._say(f"{field} = {value}")
        return True

    def _temperature(self, text: str) -> bool:
        return self._set("temperature", text, float, "/temperature")

    def _max_tokens(self, text: str) -> bool:
        return self._set("maximum_tokens", text, int, "/max-tokens")

    def _system(self, text: str) -> bool:
        self.session.system_prompt = text
        self._save()
        self._say(f"system prompt: {text}" if text else "no system prompt")
        return True

    def _image(self, text: str) -> bool:
        try:
            image = read_image(text, bool(self.client.model_info(self.model).get("vision")))
        except ValueError as error:
            self._refuse(f"/image: {error}")
            return True
        self.images.append(image.base_64)
        self._say(f"(image {len(self.images)} for the next message: {image_size(image.base_64)})")
        return True

    def _clear(self, _: str) -> bool:
        self.session = self._new_session(self.session.system_prompt, self.session.params)
        self._say("(a new conversation)")
        return True

    def _regenerate(self, _: str) -> bool:
        turns = self.session.turns
        replaced = turns.pop() if turns and turns[-1].role == "assistant" else None
        if not turns or turns[-1].role != "user":
            self._refuse("/regenerate: there is no message to reply to yet")
        elif self._reply():
            replaced = None
        if replaced is not None:
            turns.append(replaced)
        self._save()
        return True
