"""Streaming and concurrency.

- A streamed completion (T 0.8, top_k 40, top_p 0.9): time to first chunk and tokens/s of
  edgecomplete's Client.complete_with_streaming vs llama-cpp-python's create_completion(stream=True)
  on the same GGUF, prompt and threads (flash attention on for both). Target: ratio >= 1.0.
- 4 concurrent requests on one AsyncClient (continuous batching) vs the same 4 run one after
  another: aggregate tokens/s. Target: >= 1.4.

    python -m bench.streaming [--models smollm2-135m] [--tokens 128] [--repeats 5]
"""

from __future__ import annotations

import asyncio
import statistics
import time

from edgecomplete import AsyncClient, Client, CompletionRequest, Prompt, StreamChunk
from edgecomplete.engine import on_llama_thread

from .common import PROMPT, SAMPLING, arguments, model_path, print_table, reference_llama, save

PROMPTS = [PROMPT, "A practical guide to keeping bees starts with", "The spaceship's engine room was",
           "Grandmother's recipe for apple cake calls for"]


def main() -> None:
    parser = arguments(__doc__)
    parser.set_defaults(models=["smollm2-135m"])
    options = parser.parse_args()
    rows, report = [], []
    for name in options.models:
        reference = reference_llama(model_path(name), options.threads, flash_attention=True)
        # No prefix reuse: the reference evaluates every prompt too (bench.chat measures reuse).
        client = Client(threads=options.threads, flash_attention=True, prefix_cache=False)
        client.backend.engine(name)

        def ours_streamed(seed):
            start = time.perf_counter()
            first, tokens = None, 0
            request = CompletionRequest(prompt=Prompt.from_text(PROMPT), maximum_tokens=options.tokens, seed=seed,
                                        tokens=True, **SAMPLING)
            for item in client.complete_with_streaming(request, model=name):
                if isinstance(item, StreamChunk):
                    first = first or time.perf_counter() - start
                    tokens += len(item.completion_tokens)
            return first, tokens / (time.perf_counter() - start)

        def reference_streamed(seed):
            def run():  # the whole stream on the llama thread: no thread hop per chunk
                reference.llama.reset()
                start = time.perf_counter()
                first, tokens = None, 0
                for chunk in reference.llama.create_completion(PROMPT, max_tokens=options.tokens, seed=seed,
                                                               min_p=0.0, repeat_penalty=1.0, stream=True,
                                                               **SAMPLING):
                    first = first or time.perf_counter() - start
                    tokens += 1
                return first, tokens / (time.perf_counter() - start)
            return on_llama_thread(run)

        ours_streamed(0), reference_streamed(0)  # warm-up
        measured = {"edgecomplete": [], "reference": []}
        for repeat in range(options.repeats):
            measured["edgecomplete"].append(ours_streamed(repeat))
            measured["reference"].append(reference_streamed(repeat))
        ttft = {k: statistics.median(v[0] for v in runs) for k, runs in measured.items()}
        rate = {k: statistics.median(v[1] for v in runs) for k, runs in measured.items()}
        rows.append([name, "streamed: time to first chunk", f"{1000 * ttft['edgecomplete']:.1f} ms",
                     f"{1000 * ttft['reference']:.1f} ms", f"{ttft['reference'] / ttft['edgecomplete']:.2f}"])
        rows.append([name, "streamed: tokens/s", f"{rate['edgecomplete']:.1f}", f"{rate['reference']:.1f}",
                     f"{rate['edgecomplete'] / rate['reference']:.2f}"])

        requests = [CompletionRequest(prompt=Prompt.from_text(p), maximum_tokens=options.tokens,
                                      minimum_tokens=options.tokens, seed=i, **SAMPLING) for i, p in enumerate(PROMPTS)]

        def one_after_another():
            start = time.perf_counter()
            tokens = sum(client.complete(r, model=name).num_tokens_generated for r in requests)
            return tokens / (time.perf_counter() - start)

        async def together():
            async with AsyncClient(threads=options.threads, flash_attention=True, prefix_cache=False) as async_client:
                await async_client.complete(requests[0], name)  # load
                start = time.perf_counter()
                responses = await asyncio.gather(*(async_client.complete(r, name) for r in requests))
                return sum(r.num_tokens_generated for r in responses) / (time.perf_counter() - start)

        sequential = statistics.median(one_after_another() for _ in range(options.repeats))
        concurrent = statistics.median(asyncio.run(together()) for _ in range(options.repeats))
        rows.append([name, "4 concurrent vs one after another: tokens/s", f"{concurrent:.1f}", f"{sequential:.1f}",
                     f"{concurrent / sequential:.2f}"])
        report.append({"model": name, "ttft_s": ttft, "tokens_per_s": rate, "concurrent_tokens_per_s": concurrent,
                       "sequential_tokens_per_s": sequential})
        client.close()
    print_table(f"streaming (median of {options.repeats}, {options.threads} threads; ratio > 1: edgecomplete better)",
                ["model", "case", "edgecomplete", "reference", "ratio"], rows)
    print(f"\nsaved {save('streaming', report)}")


if __name__ == "__main__":
    main()
