"""Speculative decoding: tokens/s on tasks that quote their input, and on a story that does not.

The quoting tasks are greedy; the free story is sampled (T 0.8, top_k 40, top_p 0.9, one seed:
greedy text from these small models soon loops, and a loop repeats itself), the same seed giving
the same text with and without speculation, median of 7 (`--story-repeats`). Per model and task, in
one run, interleaved: edgecomplete (speculation on, its default), edgecomplete without speculation,
llama-cpp-python's create_completion, and llama-cpp-python with its own prompt-lookup decoding
(`LlamaPromptLookupDecoding`, its defaults: n-grams up to 2, 10 tokens a draft). Flash attention on
for all (llama.cpp's choice for the CPU), no prompt cache, same GGUF, prompt and threads, and
llama-cpp-python computing as edgecomplete does: its KV cache type (bf16 on the CPU), weights
repacked as edgecomplete's (only for ggml's AMX kernels: `default_repack`) and ggml's tiled
K-quant products off (process-wide, set by edgecomplete: engine/native.py). With its defaults
(f16, repacked, tiled) llama-cpp-python rounds otherwise and greedy text can part at a near-tie, and speed compares only over the same text;
`--reference-defaults` gives them back (the tiles for edgecomplete too: ggml reads that setting
once per process). Targets (issue 16): on the quoting tasks >= 1.5x plain
llama-cpp-python and >= 1.2x its prompt lookup; on the free story >= 0.97x edgecomplete without
speculation. Also prints the acceptance rate (accepted / drafted), drafts accepted per decode step,
whether the text with speculation is the one without it, and, on the greedy tasks, whether it is
llama-cpp-python's and its lookup's text (1/0 each: tokens/s compare only over the same text). All
see the same prompt tokens: the request keeps the prompt's final whitespace
(`disable_optimizations`), as llama-cpp-python does.

    python -m bench.speculative [--models smollm2-135m gemma-3-270m] [--tokens 256] [--repeats 3] [--tasks code ...]
"""

from __future__ import annotations

import os

from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

from edgecomplete import Client, CompletionRequest, Prompt
from edgecomplete.engine.native import TILED_MATMUL_VARIABLE

from .common import (SAMPLING, arguments, edgecomplete_numerics, interleaved_rates, model_path, print_table,
                     reference_llama, save)

PARAGRAPH = (
    "The old harbour town grew rich on the salt trade. Every spring the merchants sailed north with "
    "barrels of salt and came back with timber, wool and news. They built tall houses along the river, "
    "each with a crane under its gable to lift goods from the boats straight into the attic. When the "
    "salt trade moved to the new port in the south, the cranes fell silent, the attics filled with "
    "dust, and the town slowly turned to fishing."
)
RECORDS = "\n".join(
    f"- name: {name}; city: {city}; born: {year}; occupation: {job}"
    for name, city, year, job in [
        ("Ada Lovelace", "London", 1815, "mathematician"), ("Carl Gauss", "Brunswick", 1777, "mathematician"),
        ("Marie Curie", "Warsaw", 1867, "physicist"), ("Alan Turing", "London", 1912, "computer scientist"),
        ("Emmy Noether", "Erlangen", 1882, "mathematician"), ("Niels Bohr", "Copenhagen", 1885, "physicist"),
    ]
)
CODE = (
    "class Shape:\n    def area(self):\n        raise NotImplementedError\n\n\n"
    "class Square(Shape):\n    def __init__(self, side):\n        self.side = side\n\n"
    "    def area(self):\n        return self.side * self.side\n\n    def __repr__(self):\n"
    "        return f\"Square(side={self.side})\"\n\n\n"
    "class Rectangle(Shape):\n    def __init__(self, width, height):\n        self.width = width\n"
    "        self.height = height\n\n    def area(self):\n        return self.width * self.height\n\n"
    "    def __repr__(self):\n        return f\"Rectangle(width={self.width}, height={self.height})\"\n\n\n"
    "class Circle(Shape):\n"
)
TASKS = {
    "rewrite": f"{PARAGRAPH}\n\nThe same paragraph again, with 'harbour' spelled 'harbor':\n\n",
    "extract": f"People:\n{RECORDS}\n\nThe same people as a table with the columns name | city | born:\n\n",
    "code": CODE,
    "quote": f"Passage: {PARAGRAPH}\n\nQuestion: What happened when the salt trade moved south? Answer by "
             "quoting the passage in full, then explain.\n\nAnswer: \"",
    "free story": "Write a story about a girl who finds a strange key.\n\nOnce upon a time,",
}
SAMPLED = {"free story": dict(SAMPLING, seed=1234)}  # the others are greedy


def main() -> None:
    parser = arguments(__doc__)
    parser.set_defaults(tokens=256, repeats=3)
    parser.add_argument("--story-repeats", type=int, default=7,
                        help="timed runs of the story: its target compares two runs of the same work (few or no "
                             "drafts), where the machine's drift between runs decides a median of 3")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--reference-defaults", action="store_true",
                        help="llama-cpp-python with its defaults (f16 KV cache, repacked weights, ggml's tiled "
                             "K-quant products: for edgecomplete too, they are per process) rather than "
                             "computing as edgecomplete does (so that both produce the same text)")
    options = parser.parse_args()
    if options.reference_defaults:  # before anything multiplies: ggml reads it at its first product
        os.environ[TILED_MATMUL_VARIABLE] = "1"
    rows, report = [], []
    for name in options.models:
        path = model_path(name)
        same = dict(flash_attention=True, n_ctx=4096, **({} if options.reference_defaults else edgecomplete_numerics()))
        plain_reference = reference_llama(path, options.threads, **same)
        lookup_reference = reference_llama(path, options.threads, **same, draft_model=LlamaPromptLookupDecoding())
        speculative = Client(threads=options.threads, prefix_cache=False)
        plain = Client(threads=options.threads, prefix_cache=False, speculation=False)
        for task in options.tasks:
            prompt, sampling = TASKS[task], SAMPLED.get(task, {})
            request = CompletionRequest(prompt=Prompt.from_text(prompt), maximum_tokens=options.tokens,
                                        minimum_tokens=options.tokens, disable_optimizations=True,
                                        **sampling)  # no early end: equal work; the prompt's final whitespace kept, as llama-cpp-python keeps it
            last = {}

            def ours(client, key):
                def run():
                    last[key] = client.complete(request, model=name)
                    return last[key].num_tokens_generated
                return run

            def reference_run(llama, key):
                def run():
                    out = llama.complete(prompt, max_tokens=options.tokens, repeat_penalty=1.0, min_p=0.0,
                                         temperature=sampling.get("temperature", 0.0), top_k=sampling.get("top_k", 40),
                                         top_p=sampling.get("top_p", 1.0), seed=sampling.get("seed", 0),
                                         logit_bias={llama.llama.token_eos(): -1e9})  # as minimum_tokens
                    last[key] = out["choices"][0]["text"]
                    return out["usage"]["completion_tokens"]
                return run

            rates = interleaved_rates({
                "edgecomplete": ours(speculative, "speculative"),
                "edgecomplete, no speculation": ours(plain, "plain"),
                "llama-cpp-python": reference_run(plain_reference, "reference"),
                "llama-cpp-python prompt lookup": reference_run(lookup_reference, "lookup"),
            }, options.story_repeats if sampling else options.repeats)
            edge, edge_plain, ref, ref_lookup = (r["tokens_per_s"] for r in rates.values())
            stats = last["speculative"].decode_stats
            same = last["speculative"].completions == last["plain"].completions
            text = last["speculative"].completions[0].completion
            # greedy, llama-cpp-python's text is ours where its rows round as ours (its lookup's batches may not)
            same_as_reference = (None if sampling else
                                 f"{int(text == last['reference'])}/{int(text == last['lookup'])}")
            acceptance = stats.accepted_drafts / stats.drafted_tokens if stats.drafted_tokens else 0.0
            rows.append([name, task, f"{edge:.1f}", f"{edge_plain:.1f}", f"{ref:.1f}", f"{ref_lookup:.1f}",
                         f"{edge / ref:.2f}", f"{edge / ref_lookup:.2f}", f"{edge / edge_plain:.2f}",
                         f"{100 * acceptance:.0f}%", f"{stats.accepted_per_step:.2f}", "yes" if same else "NO",
                         same_as_reference or "—"])
            report.append({"model": name, "task": task, "rates": rates, "ratio_vs_llama_cpp_python": edge / ref,
                           "ratio_vs_prompt_lookup": edge / ref_lookup, "ratio_vs_no_speculation": edge / edge_plain,
                           "drafted": stats.drafted_tokens, "accepted": stats.accepted_drafts,
                           "decode_steps": stats.decode_steps, "same_text": same,
                           "same_text_as_llama_cpp_python_and_its_lookup": same_as_reference,
                           "reference_computes_as_edgecomplete": not options.reference_defaults,
                           "speculation_rows": speculative.backend.engine(name).speculation_rows})
        speculative.close()
        plain.close()
    print_table(
        f"tokens/s, {options.tokens} tokens (median of {options.repeats}, {options.threads} threads); "
        "ratios: edgecomplete / the column named",
        ["model", "task", "edgecomplete", "no spec", "llama-cpp-python", "its lookup", "vs llama-cpp-python",
         "vs lookup", "vs no spec", "accepted", "drafts/step", "same text", "same as llama-cpp-python/lookup"],
        rows,
    )
    print(f"\nsaved {save('speculative', report)}")


if __name__ == "__main__":
    main()
