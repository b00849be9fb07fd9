"""Many candidates in one batch vs llama-cpp-python, which generates them one after another.

Cases (same GGUF, prompt, parameters and threads for both engines). The reference runs with its
default attention and with flash attention (edgecomplete's default on the CPU):
- n=4 at temperature 0.8, 128 tokens each, vs four sequential Llama.create_completion calls:
  aggregate tokens/s (target >= 1.5 on smollm2-135m);
- log_probs=5 vs Llama(logits_all=True).create_completion(logprobs=5): tokens/s (target >= 1.2);
- best_of=4, n=1 vs four sequential calls: wall time (target >= 1.5).

    python -m bench.candidates [--models smollm2-135m] [--tokens 128] [--repeats 5]
"""

from __future__ import annotations

import time

from edgecomplete import Client, CompletionRequest, Prompt

from .common import PROMPT, SAMPLING, arguments, interleaved_rates, model_path, print_table, reference_llama, save


def main() -> None:
    parser = arguments(__doc__)
    parser.set_defaults(models=["smollm2-135m"])
    options = parser.parse_args()
    rows, report = [], []
    for name in options.models:
        path = model_path(name)
        references = {
            attention: (reference_llama(path, options.threads, flash_attention=flash),
                        reference_llama(path, options.threads, flash_attention=flash, logits_all=True))
            for attention, flash in (("default", False), ("flash-attn", True))
        }
        client = Client(threads=options.threads, prefix_cache=False)  # the reference resets its cache too
        client.backend.engine(name)

        def ours(**fields):
            def run():
                request = CompletionRequest(prompt=Prompt.from_text(PROMPT), maximum_tokens=options.tokens,
                                            seed=11, **SAMPLING, **fields)
                return client.complete(request, model=name).num_tokens_generated
            return run

        def theirs(llama, calls=1, **fields):
            def run():
                produced = 0
                for call in range(calls):
                    out = llama.complete(PROMPT, max_tokens=options.tokens, seed=11 + call, min_p=0.0,
                                         repeat_penalty=1.0, **SAMPLING, **fields)
                    produced += out["usage"]["completion_tokens"]
                return produced
            return run

        cases = {
            "n=4 vs 4 sequential calls": (ours(n=4), lambda plain, _: theirs(plain, calls=4)),
            "log_probs=5 vs logits_all+logprobs=5": (ours(log_probs=5), lambda _, full: theirs(full, logprobs=5)),
            "best_of=4,n=1 vs 4 sequential calls": (ours(best_of=4), lambda plain, _: theirs(plain, calls=4)),
        }
        for case, (edge_run, reference_run) in cases.items():
            start = time.perf_counter()
            runs = {"edgecomplete": edge_run}
            runs.update({attention: reference_run(*llamas) for attention, llamas in references.items()})
            rates = interleaved_rates(runs, options.repeats)
            edge = rates["edgecomplete"]
            row = [name, case]
            ratios = {}
            for attention in references:
                ref = rates[attention]
                if case.startswith("best_of"):
                    # Wall time of the request: edgecomplete returns the best of 4 candidates, the
                    # reference needs 4 calls to pick from.
                    ratios[attention] = ref["seconds"] / edge["seconds"]
                else:
                    ratios[attention] = edge["tokens_per_s"] / ref["tokens_per_s"]
            metric = "wall time" if case.startswith("best_of") else "tokens/s"
            row += [metric, f"{edge['seconds']:.2f}", f"{edge['tokens_per_s']:.1f}"]
            for attention in references:
                row += [f"{rates[attention]['seconds']:.2f}", f"{rates[attention]['tokens_per_s']:.1f}",
                        f"{ratios[attention]:.2f}"]
            rows.append(row + ["/".join(f"{rates[k]['tokens']:.0f}" for k in runs)])
            report.append({"model": name, "case": case, "rates": rates, "ratios": ratios,
                           "wall_s": time.perf_counter() - start})
        client.close()
    print_table(
        f"candidates in one batch (median of {options.repeats}, {options.threads} threads; ratio = edgecomplete / reference)",
        ["model", "case", "ratio of", "ours s", "ours tok/s", "ref s", "ref tok/s", "ratio", "ref+fa s",
         "ref+fa tok/s", "ratio", "tokens"],
        rows,
    )
    print(f"\nsaved {save('candidates', report)}")


if __name__ == "__main__":
    main()
