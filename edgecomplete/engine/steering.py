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

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..steering import ConceptStore, write_whole
from ..validation import InvalidRequest
from .llama import HiddenStates, LlamaModel
from .thread import on_llama_thread

# Measured on smollm2-135m and gemma-3-270m (README, "Steering concepts"): at 0.12 over the band,
# held-out positive texts gain 1.1 to 1.4 nats/token against negative ones while neutral text
# loses 0.05 to 0.17.
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
        self._vectors: Dict[str, np.ndarray] = {}  # control vectors at strength 1, by concept
        self._capture: Optional[HiddenStates] = None
        self._checked = False

    def steering(self, concepts: Sequence[str], strengths: Optional[Mapping[str, float]]) -> Optional[Steering]:
        """The control vector of a request's `steering_concepts` (None: no steering). It spans
        every layer llama.cpp can steer; each concept's rows outside its layers are zero."""
        if not concepts:
            return None
        self._check_graph()
        strengths = strengths or {}
        key = tuple(sorted((concept, float(strengths.get(concept, 1.0))) for concept in dict.fromkeys(concepts)))
        total = sum(strength * self.control_vector(concept) for concept, strength in key)
        return Steering(key, np.asarray(total, dtype=np.float32), 1, self.model.layers - 1)

    def control_vector(self, concept: str) -> np.ndarray:
        """A concept's control vector at strength 1: DEFAULT_STRENGTH x its directions on its
        layers (the band for a concept made from examples), zero elsewhere. Read or made once."""
        if concept not in self._vectors:
            imported = self.store.imported(concept)
            directions = self._directions(concept, imported)
            if imported:
                vector = DEFAULT_STRENGTH * directions
            else:
                first, last = layer_band(self.model.layers)
                vector = np.zeros_like(directions)
                vector[first:last + 1] = DEFAULT_STRENGTH * directions[first:last + 1]
            self._vectors[concept] = vector
        return self._vectors[concept]

    def export(self, concept: str, path, strength: float = 1.0) -> None:
        """Write the concept's control vector for this model (times `strength`) as a llama.cpp
        control-vector GGUF: `--control-vector FILE` then steers llama.cpp's own tools as
        edgecomplete does by default."""
        self._check_graph()
        write_control_vector(path, strength * self.control_vector(concept), self.model.path.stem)

    def import_file(self, path) -> str:
        """Keep a llama.cpp control-vector GGUF made for this model as a concept (its rows at
        strength 1 are the file's, on the file's layers); its id is the file's sha256."""
        vector = read_control_vector(path, self.model.layers, self.model.embedding_size)
        identifier = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        buffer = io.BytesIO()
        np.save(buffer, (vector / DEFAULT_STRENGTH).astype(np.float32))
        self.store.add_imported(identifier, Path(path).name, self.model_key, buffer.getvalue(),
                                self.store.vectors_path(identifier, self.model_key))
        self._vectors.pop(identifier, None)
        return identifier

    def _directions(self, concept: str, imported: Optional[Mapping[str, str]]) -> np.ndarray:
        """The concept's directions for this model: from the cache file, else made (and cached)."""
        path = self.store.vectors_path(concept, self.model_key)
        if imported and not path.exists():
            raise InvalidRequest("steering_concepts", f"{concept[:12]}... was imported from {imported['file']} "
                                 f"for {imported['model']}; it has no vectors for {self.model_key}")
        expected = (self.model.layers, self.model.embedding_size)
        directions = None
        if path.exists():
            try:
                directions = np.load(path)
            except (OSError, ValueError):
                directions = None  # unreadable: made again
            if directions is not None and directions.shape != expected:
                directions = None
        if directions is None and imported:
            raise InvalidRequest("steering_concepts", f"{concept[:12]}...: its vectors in {path} are unreadable; "
                                 f"import {imported['file']} again")
        if directions is None:
            directions = on_llama_thread(lambda: self._make(self.store.examples(concept)))
            buffer = io.BytesIO()
            np.save(buffer, directions)
            write_whole(path, buffer.getvalue())
        return directions

    # ---- on the llama thread ----------------------------------------------------------------------

    def _hidden_states(self) -> HiddenStates:
        if self._capture is None:
            self._capture = HiddenStates(self.model, CAPTURE_TOKENS)
        return self._capture

    def _text_mean(self, text: str, field: str) -> np.ndarray:
        """The mean of each layer's output over the text's positions but the first. The first
        position (BOS, or the first token where the model adds none) is the attention sink:
        its activations are hundreds of times larger than the others' and nearly the same in
        every text, so in a mean over texts of different lengths it would not cancel out."""
        tokens = ([self.model.bos] if self.model.add_bos else []) + self.model.tokenize(text)
        if len(tokens) > CAPTURE_TOKENS:
            raise InvalidRequest(field, f"at most {CAPTURE_TOKENS} tokens, got {len(tokens)}")
        if len(tokens) < 2:
            raise InvalidRequest(field, f"must be at least 2 tokens on {self.model.path.name}, got {text!r}")
        states = self._hidden_states().layers(tokens)
        return states[:, 1:].astype(np.float64).mean(axis=1)

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


# ---- llama.cpp's control-vector GGUF ------------------------------------------------------------

def write_control_vector(path, vector: np.ndarray, model_hint: str) -> None:
    """The format llama.cpp's `--control-vector` loads: architecture "controlvector", one F32
    tensor `direction.<k>` of the embedding size per steered layer k >= 1 (added to the output
    of layer k). Written whole: a temporary file renamed into place."""
    import gguf

    path = Path(path)
    temporary = path.with_name(f".{path.name}.part")
    try:
        writer = gguf.GGUFWriter(str(temporary), "controlvector")
        writer.add_string("controlvector.model_hint", model_hint)
        layers = [k for k in range(1, len(vector)) if np.any(vector[k])]
        writer.add_uint32("controlvector.layer_count", len(layers))
        for k in layers:
            writer.add_tensor(f"direction.{k}", np.ascontiguousarray(vector[k], dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def read_control_vector(path, layers: int, embedding_size: int) -> np.ndarray:
    """A control-vector GGUF as one row per layer (zero where it has none), checked as llama.cpp's
    loader checks it, and against the model: InvalidRequest naming what is wrong."""
    import gguf

    field = "path"
    try:
        reader = gguf.GGUFReader(str(path))
    except (OSError, ValueError) as error:
        raise InvalidRequest(field, f"{path}: not a readable GGUF file ({error})") from None
    architecture = reader.fields.get("general.architecture")
    if architecture is None or bytes(architecture.parts[-1]).decode() != "controlvector":
        raise InvalidRequest(field, f"{path}: not a control vector (general.architecture is not controlvector)")
    vector = np.zeros((layers, embedding_size), dtype=np.float32)
    found = 0
    for tensor in reader.tensors:  # llama.cpp's loader refuses a file with any other tensor
        if not tensor.name.startswith("direction."):
            raise InvalidRequest(field, f"{path}: tensor {tensor.name} is not direction.<layer>")
        try:
            layer = int(tensor.name.split(".", 1)[1])
        except ValueError:
            raise InvalidRequest(field, f"{path}: tensor {tensor.name} has no layer number") from None
        data = np.asarray(tensor.data)
        if tensor.tensor_type != gguf.GGMLQuantizationType.F32 or data.ndim != 1:
            raise InvalidRequest(field, f"{path}: {tensor.name} must be a 1-D F32 tensor")
        if layer == 0:
            raise InvalidRequest(field, f"{path}: direction.0 (llama.cpp steers layers from 1 on)")
        if not 1 <= layer < layers:
            raise InvalidRequest(field, f"{path}: {tensor.name}: layer {layer} is not in 1..{layers - 1} of this model")
        if data.shape[0] != embedding_size:
            raise InvalidRequest(field, f"{path}: {tensor.name} has {data.shape[0]} values; this model's "
                                 f"embedding size is {embedding_size}")
        vector[layer] += data
        found += 1
    if not found:
        raise InvalidRequest(field, f"{path}: no direction.<layer> tensors")
    return vector
