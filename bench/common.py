"""Helpers shared by the benchmarks: models, the reference engine, timing, report tables.

Every benchmark measures edgecomplete and llama-cpp-python's high-level `Llama` on the same GGUF,
with the same prompt, parameters, threads and attention setting, in the same run, and prints
ratios (edgecomplete / reference: > 1 means edgecomplete is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List

import llama_cpp.llama_cpp as llama_cpp_bindings
from llama_cpp import Llama

from edgecomplete import models
from edgecomplete.engine import on_llama_thread
from edgecomplete.engine.llama import KV_CACHE_TYPES, default_kv_cache, default_repack, default_threads

RESULTS = Path(__file__).resolve().parent / "results"

# The prompt and sampling settings the speed benchmarks share.
PROMPT = "The history of the old harbour town begins in the twelfth century, when"
SAMPLING = dict(temperature=0.8, top_k=40, top_p=0.9)


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma-3-270m"])
    parser.add_argument("--tokens", type=int, default=128, help="tokens per completion")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case (the median is kept)")
    parser.add_argument("--threads", type=int, default=default_threads(), help="for both engines")
    return parser


def model_path(name: str) -> Path:
    """The model's GGUF, pulled first if needed."""
    return models.pull(name)


@contextlib.contextmanager
def weight_repacking(repack: bool):
    """llama-cpp-python's Llama takes no `use_extra_bufts`: one made inside this block loads its
    weights repacked for llama.cpp's multi-row CPU kernels (its default) or not, as edgecomplete
    chooses (`Client(repack=None)`: `default_repack`). Not thread-safe: for the llama thread."""
    default = llama_cpp_bindings.llama_model_default_params

    def params():
        chosen = default()
        chosen.use_extra_bufts = repack
        return chosen

    llama_cpp_bindings.llama_model_default_params = params
    try:
        yield
    finally:
        llama_cpp_bindings.llama_model_default_params = default


def load_llama(path: Path, repack: bool = True, **options) -> Llama:
    """llama-cpp-python's Llama over `path`, weights repacked or not (`weight_repacking`); on the
    llama thread."""
    with weight_repacking(repack):
        return Llama(str(path), verbose=False, **options)


def edgecomplete_numerics() -> Dict:
    """`load_llama` options under which llama-cpp-python computes as edgecomplete's defaults do:
    the engine's KV cache type (bf16 on the CPU; llama-cpp-python's is f16) and weights repacked
    as the engine's (`default_repack`: only for ggml's AMX kernels; llama-cpp-python always
    repacks). Greedy text is then the same. (ggml's tiled K-quant products are off for the whole
    process, llama-cpp-python's Llama included, from importing edgecomplete's engine on:
    engine/native.py.)"""
    cache = KV_CACHE_TYPES[default_kv_cache()]
    return {"type_k": cache, "type_v": cache, "repack": default_repack()}


class Reference:
    """llama-cpp-python's Llama, run on edgecomplete's llama thread: llama.cpp's OpenMP worker teams
    belong to the calling thread, and two teams in one process slow both engines down. `repack`:
    see `weight_repacking` (llama-cpp-python's default: True)."""

    def __init__(self, path: Path, threads: int, flash_attention: bool, n_ctx: int = 2048, repack: bool = True,
                 **options):
        self.llama = on_llama_thread(lambda: load_llama(path, repack, n_ctx=n_ctx, n_threads=threads,
                                                        n_threads_batch=threads, flash_attn=flash_attention,
                                                        **options))

    def complete(self, prompt: str, **options):
        """create_completion without the prompt cache (edgecomplete evaluates every prompt too)."""
        def run():
            self.llama.reset()
            return self.llama.create_completion(prompt, **options)
        return on_llama_thread(run)


def reference_llama(path: Path, threads: int, flash_attention: bool, n_ctx: int = 2048, **options) -> Reference:
    return Reference(path, threads, flash_attention, n_ctx, **options)


def interleaved_rates(runs: Dict[str, Callable[[], int]], repeats: int) -> Dict[str, Dict[str, float]]:
    """Each run returns the tokens it produced. After one warm-up each, the runs take turns
    `repeats` times, in reverse order every other time (so drift of the machine hits all alike,
    and none always runs first or right after the same one: on the Xeon build machine, one engine
    against itself in the same place each turn differed by up to 7%); median tokens/s per run."""
    for run in runs.values():
        run()
    rates: Dict[str, List[float]] = {name: [] for name in runs}
    tokens: Dict[str, List[int]] = {name: [] for name in runs}
    seconds: Dict[str, List[float]] = {name: [] for name in runs}
    for turn in range(repeats):
        for name in (list(runs) if turn % 2 == 0 else list(runs)[::-1]):
            start = time.perf_counter()
            produced = runs[name]()
            elapsed = time.perf_counter() - start
            rates[name].append(produced / elapsed)
            tokens[name].append(produced)
            seconds[name].append(elapsed)
    return {
        name: {"tokens_per_s": statistics.median(rates[name]), "tokens": statistics.median(tokens[name]),
               "seconds": statistics.median(seconds[name]), "all_tokens_per_s": rates[name]}
        for name in runs
    }


def print_table(title: str, header: List[str], rows: List[List]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))


def save(name: str, data) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path
