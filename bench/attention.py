"""What a decode of n rows of one sequence costs (speculation verifies its drafts that way), with
edgecomplete's attention against llama.cpp's own, in one run.

- edgecomplete: flash attention over its bf16 KV cache. Where llama.cpp is built with AVX-512 that
  is the patched path (patches/llama-cpp-python-0.3.36.patch, part 2: a row's visible cells 64 at
  a time); elsewhere llama.cpp's row-at-a-time path.
- llama.cpp's flash attention over its default f16 cache (row at a time below 64 rows; a decode
  of one row over 512 cells or more split across threads).
- attention without flash attention over bf16 (matrix products and a softmax).

The same model, context and threads for all; weights repacked as edgecomplete's. The configurations
take turns, in reverse order every other turn; each turn times `--decodes` decodes of each row
count back to back (llama.cpp reuses its graph for the same count) after one untimed. Prints
milliseconds per decode (median over turns), each configuration's decode of n rows in decodes of
one row, and ratios theirs / edgecomplete's time (> 1: edgecomplete faster).

    python -m bench.attention [--models smollm2-135m gemma-3-270m] [--context 400] [--rows 1 2 4 8 16]
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np

from edgecomplete.engine import on_llama_thread
from edgecomplete.engine.llama import BatchEntry, LlamaModel

from .common import RESULTS, arguments, model_path, print_table

CONFIGURATIONS = {  # name: (flash attention, KV cache type)
    "edgecomplete": (True, "bf16"),
    "f16 flash": (True, "f16"),
    "bf16 no flash": (False, "bf16"),
}


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--context", type=int, default=400, help="cells of context before the decoded rows")
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--decodes", type=int, default=8, help="timed decodes per row count and turn")
    parser.set_defaults(repeats=4)
    options = parser.parse_args()
    table, report = [], []
    for name in options.models:
        path = model_path(name)
        times = on_llama_thread(lambda: measure(path, options))
        ours = next(iter(CONFIGURATIONS))
        for rows in options.rows:
            ms = {config: 1000 * times[config][rows] for config in CONFIGURATIONS}
            in_rows = {config: times[config][rows] / times[config][1] for config in CONFIGURATIONS}
            table.append([name, rows] + [f"{ms[c]:.2f}" for c in CONFIGURATIONS]
                         + [f"{in_rows[c]:.2f}" for c in CONFIGURATIONS]
                         + [f"{ms[c] / ms[ours]:.2f}" for c in list(CONFIGURATIONS)[1:]])
            report.append({"model": name, "rows": rows, "milliseconds": ms, "decodes_of_one_row": in_rows})
    configs = list(CONFIGURATIONS)
    print_table(f"decode of n rows at {options.context} cells of context, {options.threads} threads "
                f"(median of {options.repeats} turns); ratios: that time / edgecomplete's",
                ["model", "rows"] + [f"{c} ms" for c in configs] + [f"{c} /1 row" for c in configs]
                + [f"vs {c}" for c in configs[1:]], table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "attention.json").write_text(json.dumps(report, indent=2))
    print(f"\nsaved {RESULTS / 'attention.json'}")


def measure(path, options):
    """config -> rows -> median seconds of a decode of that many rows, over the turns."""
    loaded = {}
    try:
        for config, (flash, cache) in CONFIGURATIONS.items():
            model = LlamaModel(path, flash_attention=flash, kv_cache=cache, threads=options.threads,
                               context_length=options.context + max(options.rows) + 8)
            loaded[config] = model
            tokens = np.random.default_rng(0).integers(100, model.vocab_size - 100, options.context).tolist()
            for start in range(0, options.context, model.batch_size):
                model.decode([BatchEntry(t, start + i, 0, False)
                              for i, t in enumerate(tokens[start:start + model.batch_size])])
        seconds = {config: {rows: [] for rows in options.rows} for config in CONFIGURATIONS}
        for turn in range(options.repeats):
            for config in (list(CONFIGURATIONS) if turn % 2 == 0 else list(CONFIGURATIONS)[::-1]):
                model = loaded[config]
                for rows in options.rows:
                    took = []
                    for decode in range(options.decodes + 1):
                        entries = [BatchEntry(200 + i, options.context + i, 0, True) for i in range(rows)]
                        started = time.perf_counter()
                        model.decode(entries)
                        took.append(time.perf_counter() - started)
                        model.truncate_sequence(0, options.context)
                    seconds[config][rows].append(statistics.median(took[1:]))
        return {config: {rows: statistics.median(values) for rows, values in by_rows.items()}
                for config, by_rows in seconds.items()}
    finally:
        for model in loaded.values():
            model.close()


if __name__ == "__main__":
    main()
