"""Decode speed with the C sampler vs llama-cpp-python's Llama.create_completion.

Cases, on each model: (a) greedy; (b) temperature 0.8, top_k 40, top_p 0.9; (c) (b) plus presence
and frequency penalties 0.5. Same GGUF, prompt, parameters and threads for both engines.
The reference runs twice: with its default attention (flash attention off) and matched to
edgecomplete's default (flash attention on, which llama.cpp picks for the CPU). Also prints the
share of edgecomplete's wall time spent in the sampler call (C, with its thin Python wrapper).

    python -m bench.sampling [--models smollm2-135m gemma-3-270m] [--tokens 128] [--repeats 5]
"""

from __future__ import annotations

import time

from edgecomplete import Client, CompletionRequest, Prompt

from .common import PROMPT, SAMPLING, arguments, interleaved_rates, model_path, print_table, reference_llama, save


CASES = {
    "a greedy": dict(temperature=0.0),
    "b T0.8 k40 p0.9": dict(SAMPLING),
    "c b + penalties 0.5": dict(SAMPLING, presence_penalty=0.5, frequency_penalty=0.5),
}


class SamplerClock:
    """Wraps the engine's sampler calls to measure their share of wall time (bench only)."""

    def __init__(self, engine):
        self.seconds = 0.0
        for name in ("step_drafts", "step_shared"):
            original = getattr(engine.sampler, name)

            def timed(*args, _original=original):
                start = time.perf_counter()
                try:
                    return _original(*args)
                finally:
                    self.seconds += time.perf_counter() - start

            setattr(engine.sampler, name, timed)


def main() -> None:
    options = arguments(__doc__).parse_args()
    rows, report = [], []
    for name in options.models:
        path = model_path(name)
        references = {
            "reference (default attention)": reference_llama(path, options.threads, flash_attention=False),
            "reference (flash attention)": reference_llama(path, options.threads, flash_attention=True),
        }
        client = Client(threads=options.threads, prefix_cache=False)  # the reference resets its cache too
        clock = SamplerClock(client.backend.engine(name))
        for case, params in CASES.items():
            def ours():
                request = CompletionRequest(prompt=Prompt.from_text(PROMPT), maximum_tokens=options.tokens,
                                            seed=1234, **params)
                return client.complete(request, model=name).num_tokens_generated

            def reference_run(llama):
                def run():
                    out = llama.complete(
                        PROMPT, max_tokens=options.tokens, seed=1234, min_p=0.0, repeat_penalty=1.0,
                        temperature=params["temperature"], top_k=params.get("top_k", 0),
                        top_p=params.get("top_p", 1.0), presence_penalty=params.get("presence_penalty", 0.0),
                        frequency_penalty=params.get("frequency_penalty", 0.0),
                    )
                    return out["usage"]["completion_tokens"]
                return run

            runs = {"edgecomplete": ours, **{label: reference_run(llama) for label, llama in references.items()}}
            clock.seconds = 0.0
            start = time.perf_counter()
            rates = interleaved_rates(runs, options.repeats)
            # The clock ran during edgecomplete's runs only; scale by their share of the wall time.
            edge_wall = (options.repeats + 1) * options.tokens / rates["edgecomplete"]["tokens_per_s"]
            share = clock.seconds / edge_wall
            edge = rates["edgecomplete"]["tokens_per_s"]
            default, matched = (rates[label]["tokens_per_s"] for label in references)
            rows.append([name, case, f"{edge:.1f}", f"{default:.1f}", f"{edge / default:.2f}",
                         f"{matched:.1f}", f"{edge / matched:.2f}", f"{100 * share:.2f}%",
                         "/".join(f"{rates[k]['tokens']:.0f}" for k in runs)])
            report.append({"model": name, "case": case, "rates": rates, "sampler_share": share,
                           "ratio_vs_default": edge / default, "ratio_vs_matched": edge / matched,
                           "wall_s": time.perf_counter() - start})
        client.close()
    print_table(
        f"decode tokens/s (median of {options.repeats}, {options.threads} threads; ratio = edgecomplete / reference)",
        ["model", "case", "edgecomplete", "ref default", "ratio", "ref flash-attn", "ratio", "sampler share",
         "tokens"],
        rows,
    )
    print(f"\nsaved {save('sampling', report)}")


if __name__ == "__main__":
    main()
