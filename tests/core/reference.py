"""NumPy / pure-Python reference of the C sampling core, written from SPEC.md.

It pins the same numerics the C code documents (float32 logits, double weights
w = exp(l - max) summed left to right in a stated order) so that masks and drawn tokens can be
compared exactly, not approximately.
"""

from __future__ import annotations

import math
from typing import Dict, List, Sequence

import numpy as np

F32 = np.float32


def penalties(
    logits: np.ndarray,
    counts: Dict[int, int],
    presence: float,
    frequency: float,
    multiplicative_presence: bool,
    multiplicative_frequency: bool,
) -> np.ndarray:
    out = logits.astype(F32).copy()
    p, f = F32(presence), F32(frequency)

    def sign_safe(l, g):
        with np.errstate(all="ignore"):  # a factor may underflow to 0 or overflow, as in C
            return F32(l / g) if l > 0 else F32(l * g)

    for token, count in counts.items():
        l = out[token]
        l = sign_safe(l, F32(1.0 + float(p))) if multiplicative_presence else F32(l - p)
        if multiplicative_frequency:
            l = sign_safe(l, F32(math.pow(1.0 + float(f), count)))
        else:
            l = F32(l - F32(F32(count) * f))
        out[token] = l
    return out


def _is_candidate(x) -> bool:
    return bool(x > -math.inf)  # False for -inf and NaN


def _weight(x: float, max_logit: float) -> float:
    return 1.0 if float(x) == max_logit else math.exp(float(x) - max_logit)


def _ranked(logits: np.ndarray, ids: Sequence[int]) -> List[int]:
    return sorted(ids, key=lambda i: (-float(logits[i]), i))


def _nucleus(logits, ranked, max_logit, total, top_p) -> List[int]:
    cumulative = 0.0
    for j, token in enumerate(ranked):
        cumulative += _weight(logits[token], max_logit) / total
        if cumulative >= float(F32(top_p)):
            return ranked[: j + 1]
    return ranked


def filter_tokens(logits: np.ndarray, top_k: int, top_p: float) -> List[int]:
    """Tokens kept by top_k then top_p, in draw order (see ec_filter)."""
    n = len(logits)
    finite = [i for i in range(n) if _is_candidate(logits[i])]
    use_top_k = 0 < top_k < n
    if not use_top_k and top_p == 0:
        return finite
    if use_top_k:
        ranked = _ranked(logits, finite)[:top_k]
        if not ranked or top_p == 0:
            return ranked
        max_logit = float(logits[ranked[0]])
        total = 0.0
        for token in ranked:
            total += _weight(logits[token], max_logit)
        return _nucleus(logits, ranked, max_logit, total, top_p)
    if not finite:
        return []
    max_logit = max(float(logits[i]) for i in finite)
    total = 0.0
    for token in finite:  # id order
        total += _weight(logits[token], max_logit)
    return _nucleus(logits, _ranked(logits, finite), max_logit, total, top_p)


def draw(logits: np.ndarray, kept: Sequence[int], u: float) -> int:
    max_logit = max(float(logits[i]) for i in kept)
    weights = [_weight(logits[i], max_logit) for i in kept]
    total = 0.0
    for w in weights:
        total += w
    target, cumulative, last_positive = u * total, 0.0, None
    for token, w in zip(kept, weights):
        if w <= 0:
            continue
        cumulative += w
        last_positive = token
        if cumulative > target:
            return token
    return last_positive


def is_greedy(temperature: float, top_k: int, top_p: float) -> bool:
    return temperature == 0 and top_k <= 1 and top_p == 0


def argmax(logits: np.ndarray) -> int:
    best, best_logit = -1, -math.inf
    for i, x in enumerate(logits):
        if x > best_logit:
            best, best_logit = i, x
    return best


def scaled(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Logits after the temperature stage (temperature 0 outside greedy samples at 1)."""
    t = F32(temperature)
    if t == 0 or t == 1:
        return logits.astype(F32).copy()
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return (logits.astype(F32) / t).astype(F32)


def sample_row(logits: np.ndarray, temperature: float, top_k: int, top_p: float, u: float) -> int:
    if is_greedy(temperature, top_k, top_p):
        return argmax(logits)
    l = scaled(logits, temperature)
    return draw(l, filter_tokens(l, top_k, top_p), u)


def probabilities(logits: np.ndarray, temperature: float, top_k: int, top_p: float) -> np.ndarray:
    """The distribution a draw samples from (for frequency tests)."""
    l = scaled(logits, temperature)
    kept = filter_tokens(l, top_k, top_p)
    max_logit = max(float(l[i]) for i in kept)
    p = np.zeros(len(l))
    for i in kept:
        p[i] = _weight(l[i], max_logit)
    return p / p.sum()


def first_stop(pieces: Sequence[bytes], stops: Sequence[bytes]):
    """(token index, byte offset of the cut) of the first token after which some stop sequence
    occurs in the text, cut at the earliest-starting occurrence; None if none occurs."""
    text = b""
    for k, piece in enumerate(pieces):
        text += piece
        found = [text.find(s) for s in stops if text.find(s) >= 0]
        if found:
            return k, min(found)
    return None


def pending(text: bytes, stops: Sequence[bytes]) -> int:
    """Longest suffix of text that is a proper prefix of some stop sequence."""
    best = 0
    for s in stops:
        for length in range(1, len(s)):
            if text.endswith(s[:length]):
                best = max(best, length)
    return best


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    m = x.max()
    return x - (m + math.log(np.exp(x - m).sum()))


def top_n(logits: np.ndarray, n: int) -> List[int]:
    return _ranked(logits, range(len(logits)))[:n]


def sequence_penalty(logits, context, key, penalty, multiplicative) -> np.ndarray:
    """Every distinct follower of an occurrence of `key` in `context` is penalised once."""
    out = logits.astype(F32).copy()
    context, key = list(context), list(key)
    followers = []
    for i in range(len(context) - len(key)):
        if context[i : i + len(key)] == key and context[i + len(key)] not in followers:
            followers.append(context[i + len(key)])
    for token in followers:
        l = out[token]
        if multiplicative:
            g = F32(1.0 + float(F32(penalty)))
            with np.errstate(all="ignore"):
                out[token] = F32(l / g) if l > 0 else F32(l * g)
        else:
            out[token] = F32(l - F32(penalty))
    return out


def completion_bias(logits, pieces, end_of_generation, generated: bytes, options, inclusion, first_token_only):
    """SPEC.md's completion_bias_inclusion / _exclusion on one row; pieces[t] is token t's visible
    bytes (b"" for special tokens)."""
    out = logits.astype(F32).copy()
    live = [o for o in options if o.startswith(generated) and len(o) > len(generated)]
    marked = set()
    for option in live:
        rest = option[len(generated):]
        for token, piece in enumerate(pieces):
            if not piece:
                continue
            if (inclusion or first_token_only) and rest.startswith(piece):
                marked.add(token)
            if not inclusion and piece.startswith(rest):
                marked.add(token)
    if inclusion:
        if not marked:
            marked = set(end_of_generation)
        for token in range(len(out)):
            if token not in marked:
                out[token] = -np.inf
    else:
        for token in marked:
            out[token] = -np.inf
    return out
