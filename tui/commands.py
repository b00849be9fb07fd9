"""The terminal UI's commands for the `edgecomplete` CLI: `chat` (a conversation on the command
line) and `tui` (the full-screen app). The CLI finds them through the entry points of the group
"edgecomplete.commands" (pyproject.toml), so the core never imports the UI."""

from __future__ import annotations

import argparse

from edgecomplete import CompletionRequest, Prompt, check_request, models
from edgecomplete.cli import add_engine_flags, engine_options, ensure_model, remote_options
from edgecomplete.fields import unescape


def add_chat(commands: argparse._SubParsersAction) -> None:
    chat = commands.add_parser("chat", help="chat in the terminal (reads messages from stdin when it is not one)")
    chat.add_argument("--model", "-m", default=models.DEFAULT_MODEL,
                      help=f"registered model name or path to a .gguf file (default {models.DEFAULT_MODEL})")
    chat.add_argument("--system", "-s", type=unescape, default="", metavar="TEXT", help="the system prompt")
    chat.add_argument("--max-tokens", dest="maximum_tokens", type=int, default=512,
                      help="tokens per reply at most (default 512; /max-tokens changes it)")
    chat.add_argument("--temperature", type=float, default=0.0,
                      help="0 is greedy (default 0; /temperature changes it)")
    chat.add_argument("--mmproj", default=None, metavar="PATH",
                      help="the model's vision projector (mmproj GGUF): /image PATH attaches an image")
    add_engine_flags(chat)
    chat.set_defaults(handler=_chat)


def add_tui(commands: argparse._SubParsersAction) -> None:
    tui = commands.add_parser("tui", help="the terminal UI: chat and completion playground")
    tui.add_argument("--model", "-m", default=None, help=f"model to start with (default {models.DEFAULT_MODEL})")
    tui.add_argument("--mmproj", default=None, metavar="PATH",
                     help="the starting model's vision projector (mmproj GGUF): F10 attaches an image to a message")
    tui.add_argument("--host", default=None, metavar="URL", help="a remote engine instead of the local one")
    tui.add_argument("--backend", default="aleph", choices=("aleph", "openai", "llama-server"),
                     help="how to speak to --host (default aleph: another edgecomplete serve)")
    tui.add_argument("--token", default=None, metavar="TOKEN", help="bearer token for --host")
    tui.set_defaults(handler=_tui)


def _chat(args: argparse.Namespace) -> int:
    from .terminal_chat import run_chat

    params = {"maximum_tokens": args.maximum_tokens, "temperature": args.temperature}
    check_request(CompletionRequest(prompt=Prompt.from_text(""), **params))  # before a model is pulled
    if not args.host:
        ensure_model(args.model)
    return run_chat(args.model, args.system, params, engine=engine_options(args), mmproj=args.mmproj,
                    remote=remote_options(args))


def _tui(args: argparse.Namespace) -> int:
    from .app import main as run_tui

    if args.model and not args.host:
        ensure_model(args.model)
    run_tui(args.model or (models.DEFAULT_MODEL if args.mmproj else None), args.mmproj, remote_options(args))
    return 0
