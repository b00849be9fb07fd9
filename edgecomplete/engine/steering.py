"""Steering vectors of one model: made from a concept's examples on the llama thread, cached on
disk beside the concept, and combined into the control vector of a request.

A concept's direction at layer k is the mean over its pairs of (the mean over the tokens of the
positive text of layer k's output) minus (the same of the negative text): deterministic, no
normalisation (the residual stream's scale grows with depth, and the raw differences grow with
it). A request's control vector is the sum over its concepts of DEFAULT_STRENGTH x its strength
(1 unless `steering_strengths` says otherwise) x the direction, added to the outputs of the layers
in `layer_band` (llama.cpp's control vector: one per context, so the engine groups decodes by it).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..steering import ConceptStore, write_whole
from ..validation import InvalidRequest
from .llama import HiddenStates, LlamaModel
from .thread import on_llama_thread

# Measured on smollm2-135m and gemma-3-270m (README, "Steering"): at 0.12 over the band, held-out
# positive texts gain about 1 nat/token against negative ones while neutral text loses < 0.1.
DEFAULT_STRENGTH = 0.12
CAPTURE_TOKENS = 512  # the longest example text, in tokens


def layer_band(layers: int) -> Tuple[int, int]:
    """The layers whose outputs are steered: from a third of the depth to the last but one."""
    return max(1, layers // 3), max(1, layers - 2)


@dataclass(frozen=True)
class Steering:
    """A request's control vector: `key` names it (the concepts and strengths, sorted), so that
    decodes and KV cells are shared only under the same vector."""

    key: Tuple[Tuple[str, float], ...]
    directions: np.ndarray  # (layers, embedding size); row 0 unused
    first_layer: int
    last_layer: int


class SteeringVectors:
    """The directions of every concept for one model, made on first use."""

    def __init__(self, model: LlamaModel, model_key: str, store: ConceptStore):
        self.model, self.model_key, self.store = model, model_key, store
        self._directions: Dict[str, np.ndarray] = {}
        self._capture: Optional[HiddenStates] = None
        self._checked = False

    def steering(self, concepts: Sequence[str], strengths: Optional[Mapping[str, float]]) -> Optional[Steering]:
        """The control vector of a request's `steering_concepts` (None: no steering)."""
        if not concepts:
            return None
        self._check_graph()
        strengths = strengths or {}
        key = tuple(sorted((concept, float(strengths.get(concept, 1.0))) for concept in dict.fromkeys(concepts)))
        total = sum(DEFAULT_STRENGTH * strength * self.directions(concept) for concept, strength in key)
        first, last = layer_band(self.model.layers)
        return Steering(key, np.asarray(total, dtype=np.float32), first, last)

    def directions(self, concept: str) -> np.ndarray:
        if concept not in self._directions:
            path = self.store.vectors_path(concept, self.model_key)
            expected = (self.model.layers, self.model.embedding_size)
            directions = None
            if path.exists():
                try:
                    directions = np.load(path)
                except (OSError, ValueError):
                    directions = None  # unreadable: made again
                if directions is not None and directions.shape != expected:
                    directions = None
            if directions is None:
                directions = on_llama_thread(lambda: self._make(self.store.examples(concept)))
                buffer = io.BytesIO()
                np.save(buffer, directions)
                write_whole(path, buffer.getvalue())
            self._directions[concept] = directions
        return self._directions[concept]

    # ---- on the llama thread ----------------------------------------------------------------------

    def _hidden_states(self) -> HiddenStates:
        if self._capture is None:
            self._capture = HiddenStates(self.model, CAPTURE_TOKENS)
        return self._capture

    def _text_mean(self, text: str, field: str) -> np.ndarray:
        tokens = self.model.tokenize(text)
        prefix = [self.model.bos] if self.model.add_bos else []
        if len(prefix) + len(tokens) > CAPTURE_TOKENS:
            raise InvalidRequest(field, f"at most {CAPTURE_TOKENS - len(prefix)} tokens, got {len(tokens)}")
        states = self._hidden_states().layers(prefix + tokens)
        return states[:, len(prefix):].astype(np.float64).mean(axis=1)  # BOS is alike in every text

    def _make(self, examples) -> np.ndarray:
        differences = [self._text_mean(e.positive, f"examples[{i}].positive")
                       - self._text_mean(e.negative, f"examples[{i}].negative") for i, e in enumerate(examples)]
        return np.mean(differences, axis=0).astype(np.float32)

    def _check_graph(self) -> None:
        """Refuse a model whose graph has no control-vector hook (llama.cpp ignores the vector
        there): a random vector must change the last layer's output."""
        if self._checked:
            return

        def probe() -> bool:
            capture = self._hidden_states()
            tokens = ([self.model.bos] if self.model.add_bos else []) + self.model.tokenize("Hello there")
            plain = capture.layers(tokens)[-1]
            noise = np.random.default_rng(0).normal(size=(self.model.layers, self.model.embedding_size))
            capture.set_control_vector(noise.astype(np.float32), *layer_band(self.model.layers))
            try:
                steered = capture.layers(tokens)[-1]
            finally:
                capture.set_control_vector(None)
            return not np.allclose(plain, steered)

        if not on_llama_thread(probe):
            raise InvalidRequest("steering_concepts", f"{self.model.path.name}: this model's graph ignores "
                                 "control vectors (llama.cpp adds none for its architecture), so it cannot be steered")
        self._checked = True

    def close(self) -> None:
        if self._capture is not None:
            capture, self._capture = self._capture, None
            on_llama_thread(capture.close)
