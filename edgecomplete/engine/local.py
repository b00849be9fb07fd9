"""LocalBackend: the seam (edgecomplete.backend.Backend) over llama.cpp in this process.

A request goes down once: validated (`check_request`), its model loaded on first use, planned
against the model (`plan_completion`), submitted to the model's Engine, and its events turned
into stream items (stream.py) as they arrive.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from .. import models
from ..completion import CompletionRequest, CompletionResponseStreamItem
from ..plan import plan_completion
from ..steering import ConceptStore, SteeringConceptCreationRequest, SteeringConceptCreationResponse
from ..stream import astream_items, stream_items
from ..tokenization import DetokenizationRequest, DetokenizationResponse, TokenizationRequest, TokenizationResponse
from ..validation import InvalidRequest, check_request
from .engine import Engine
from .jobs import Job
from .llama import LlamaModel, check_context_options
from .steering import Steering, SteeringVectors
from .thread import on_llama_thread
from .vision import Projector

_open_backends: "weakref.WeakSet[LocalBackend]" = weakref.WeakSet()


@atexit.register
def _close_open_backends() -> None:
    # Stop the engines before the interpreter tears down the modules they use.
    for backend in list(_open_backends):
        backend.close()


class _JobItems:
    """A job's stream items, sync or async. Closing the iterator, or dropping it (also before
    the first item), cancels the job, which frees its sequences and cells."""

    def __init__(self, job: Job, items):
        self._job, self._items = job, items

    def __iter__(self) -> "_JobItems":
        return self

    def __next__(self) -> CompletionResponseStreamItem:
        return next(self._items)

    def __aiter__(self) -> "_JobItems":
        return self

    async def __anext__(self) -> CompletionResponseStreamItem:
        return await self._items.__anext__()

    def close(self) -> None:
        self._items.close()
        self._job.cancel()

    async def aclose(self) -> None:
        await self._items.aclose()
        self._job.cancel()

    def __del__(self):
        self._job.cancel()


def _load(path: Path, mmproj: Optional[Path], options: Mapping[str, Any]):
    """The model at `path` and its projector at `mmproj` (None: none), on the llama thread."""
    llama = LlamaModel(path, **options)
    if mmproj is None:
        return llama, None
    try:
        return llama, Projector(llama, mmproj)
    except BaseException:
        llama.close()
        raise


class LocalBackend:
    """Local GGUF models, each loaded once on first use, each served by one Engine (one decode
    loop shared by every request of every face). Options: see `Client`."""

    def __init__(self, *, context_length: Optional[int] = None, threads: Optional[int] = None,
                 max_sequences: int = 16, flash_attention: Optional[bool] = None, prefix_cache: bool = True,
                 speculation: bool = True, kv_cache: Optional[str] = None, repack: Optional[bool] = None,
                 max_waiting: Optional[int] = None, concepts: Optional[ConceptStore] = None,
                 projectors: Optional[Mapping[str, Union[str, Path]]] = None,
                 projector: Optional[Union[str, Path]] = None):
        """max_waiting: requests per model that may wait for a free sequence at once; one more
        raises BusyError (None: no limit; the server sets one). concepts: where steering
        concepts are kept (default: the data folder's). projectors: a vision projector (mmproj
        GGUF) per model name or path, over the one its registration names; projector: the one
        of every model loaded by path that `projectors` does not name."""
        check_context_options(context_length, max_sequences, threads, kv_cache, repack)  # before any model is loaded
        if max_waiting is not None and (not isinstance(max_waiting, int) or max_waiting < 0):
            raise InvalidRequest("max_waiting", f"must be None or an integer >= 0, got {max_waiting!r}")
        self._max_waiting = max_waiting
        self.concepts = concepts if concepts is not None else ConceptStore()
        self._steering: Dict[str, SteeringVectors] = {}
        self._options = dict(context_length=context_length, threads=threads, max_sequences=max_sequences,
                             flash_attention=flash_attention, kv_cache=kv_cache, repack=repack)
        self._prefix_cache = prefix_cache
        self._speculation = speculation
        self._projectors = {model: Path(path).expanduser() for model, path in (projectors or {}).items()}
        self._projector = Path(projector).expanduser() if projector is not None else None
        self._engines: Dict[str, Engine] = {}
        self._engines_lock = threading.Lock()
        _open_backends.add(self)

    def engine(self, model: str) -> Engine:
        """The engine of `model`, loading the model on first use."""
        with self._engines_lock:
            if model not in self._engines:
                path = models.resolve(model)
                mmproj = self._projectors.get(model) or (
                    self._projector if models.is_gguf_path(model) else models.resolve_projector(model))
                llama, projector = on_llama_thread(lambda: _load(path, mmproj, self._options))  # llama.cpp's thread
                version = model if not models.is_gguf_path(model) else Path(path).stem
                self._engines[model] = Engine(llama, model_version=version, prefix_cache=self._prefix_cache,
                                              max_waiting=self._max_waiting, projector=projector,
                                              speculation=self._speculation)
                self._steering[model] = SteeringVectors(llama, models.model_key(model, path), self.concepts)
            return self._engines[model]

    # ---- completions ----------------------------------------------------------------------------

    def stream(self, request: CompletionRequest, model: str,
               streamed: bool = False) -> Iterator[CompletionResponseStreamItem]:
        check_request(request, streamed)  # before a model is loaded
        engine = self.engine(model)
        plan = plan_completion(request, engine.model, self._steering_of(request, model), engine.projector)
        job = engine.submit(plan)
        return _JobItems(job, stream_items(plan, job.events(), engine.model_version))

    async def astream(self, request: CompletionRequest, model: str,
                      streamed: bool = False) -> AsyncIterator[CompletionResponseStreamItem]:
        check_request(request, streamed)  # before any thread hop
        engine = await asyncio.to_thread(self.engine, model)  # may load the model
        steering = await asyncio.to_thread(self._steering_of, request, model)  # may make a concept's vectors
        plan = await asyncio.to_thread(plan_completion, request, engine.model, steering,
                                       engine.projector)  # tokenizes, prepares images
        job = engine.submit(plan)
        return _JobItems(job, astream_items(plan, job.aevents(), engine.model_version))

    def _steering_of(self, request: CompletionRequest, model: str) -> Optional[Steering]:
        if not request.steering_concepts:
            return None
        self.engine(model)
        return self._steering[model].steering(request.steering_concepts, request.steering_strengths)

    # ---- steering concepts ------------------------------------------------------------------------

    def create_steering_concept(self, request: SteeringConceptCreationRequest) -> SteeringConceptCreationResponse:
        """Keep a concept made of `request.examples`; its vectors are made per model on first use."""
        return SteeringConceptCreationResponse(id=self.concepts.add(request.examples))

    def steering_concepts(self) -> List[Mapping[str, Any]]:
        """Every kept concept: id, pairs, first pair, where it was imported from, models with vectors."""
        return self.concepts.list()

    def export_steering_concept(self, concept: str, model: str, path: Path, strength: float = 1.0) -> None:
        """Write `concept`'s control vector for `model` (made first if needed) as a llama.cpp
        control-vector GGUF at `path`."""
        self.engine(model)
        self._steering[model].export(concept, path, strength)

    def import_steering_concept(self, path: Path, model: str) -> str:
        """Keep a llama.cpp control-vector GGUF made for `model` as a concept; its id."""
        self.engine(model)
        return self._steering[model].import_file(path)

    # ---- tokens and models ------------------------------------------------------------------------

    def tokenize(self, request: TokenizationRequest, model: str) -> TokenizationResponse:
        """Tokens of a text, as the model's tokenizer splits it (no BOS)."""
        llama = self.engine(model).model
        ids = llama.tokenize(request.prompt)
        texts = [llama.vocabulary.piece(t, raw=True).decode("utf-8", "replace") for t in ids]
        return TokenizationResponse(tokens=texts if request.tokens else None,
                                    token_ids=ids if request.token_ids else None)

    def detokenize(self, request: DetokenizationRequest, model: str) -> DetokenizationResponse:
        llama = self.engine(model).model
        for token in request.token_ids:
            if not 0 <= token < llama.vocab_size:
                raise InvalidRequest("token_ids", f"token id {token} is not in [0, {llama.vocab_size})")
        return DetokenizationResponse(result=llama.detokenize(request.token_ids))

    def model_info(self, model: str) -> Mapping[str, Any]:
        engine = self.engine(model)
        llama = engine.model
        return {
            "model": model,
            "context_length": llama.context_length,
            "trained_context_length": llama.trained_context_length,
            "vocab_size": llama.vocab_size,
            "layers": llama.layers,
            "max_sequences": llama.max_sequences,
            "chat": self._chat_template(model) is not None,
            "vision": engine.projector is not None,
            "projector": str(engine.projector.path) if engine.projector is not None else None,
            "steering": True,
        }

    def apply_chat_template(self, model: str, messages: Sequence[Mapping[str, str]],
                            add_generation_prompt: bool = True) -> str:
        template = self._chat_template(model)
        if template is None:
            raise models.NoChatTemplateError(
                f"{model} has no chat template (a base model, not tuned for chat): complete text with it "
                f"instead (the terminal UI's playground, `edgecomplete complete`)")
        pairs = [(m["role"], m["content"]) for m in messages]
        return self.engine(model).model.apply_chat_template(pairs, template, add_generation_prompt)

    def _chat_template(self, model: str) -> Optional[str]:
        fallback = None if models.is_gguf_path(model) else models.manifest(model).chat_template
        return self.engine(model).model.chat_template(fallback)

    def models(self) -> List[Mapping[str, Any]]:
        return [
            {
                "name": status.manifest.name,
                "description": status.manifest.description,
                "context_length": status.manifest.context_length,
                "license": status.manifest.license,
                "installed": status.installed,
                "path": str(status.path),
            }
            for status in models.list_models()
        ]

    def close(self) -> None:
        """Stop the engines and free every loaded model."""
        with self._engines_lock:
            engines, self._engines = list(self._engines.values()), {}
            vectors, self._steering = list(self._steering.values()), {}
        for steering in vectors:  # their capture contexts use the models' weights
            steering.close()
        for engine in engines:
            engine.close()
        _open_backends.discard(self)
