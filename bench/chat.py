"""Fast follow-ups: time to first token of the 10th chat turn with prefix reuse vs the same prompt
evaluated cold (a fresh engine). Target: >= 5x faster on smollm2-135m.

A conversation of 10 turns runs through Client.apply_chat_template and complete_with_streaming,
as the terminal UI does; the time to first chunk of every turn is printed too, to show that it
does not grow with the length of the history.

    python -m bench.chat [--models smollm2-135m] [--repeats 3] [--reply-tokens 64]
"""

from __future__ import annotations

import statistics
import time

from edgecomplete import Client, CompletionRequest, Prompt, StreamChunk

from .common import arguments, model_path, print_table, save

QUESTIONS = [
    "Hi! Can you help me plan a small garden?", "What vegetables grow well in spring?",
    "How often should I water tomatoes?", "What about peppers?", "Which herbs are easy for beginners?",
    "How much sun does basil need?", "Can I grow lettuce in pots?", "How do I keep snails away?",
    "When should I harvest carrots?", "Thanks! Can you summarise the plan in three points?",
]


def first_chunk_time(client: Client, model: str, prompt: str, tokens: int) -> tuple:
    request = CompletionRequest(prompt=Prompt.from_text(prompt), maximum_tokens=tokens, disable_optimizations=True,
                                raw_completion=True)
    start = time.perf_counter()
    first, raw = None, ""
    for item in client.complete_with_streaming(request, model=model):
        if isinstance(item, StreamChunk):
            first = first or time.perf_counter() - start
            raw += item.raw_completion or ""
    return first, raw


def main() -> None:
    parser = arguments(__doc__)
    parser.set_defaults(models=["smollm2-135m"], repeats=3)
    parser.add_argument("--reply-tokens", type=int, default=64)
    options = parser.parse_args()
    rows, report = [], []
    for name in options.models:
        model_path(name)
        warm_ttft, cold_ttft, per_turn = [], [], []
        for repeat in range(options.repeats):
            with Client(threads=options.threads) as warm:
                messages = [{"role": "system", "content": "You are a helpful gardening assistant."}]
                times = []
                for question in QUESTIONS:
                    messages.append({"role": "user", "content": question})
                    prompt = warm.apply_chat_template(name, messages)
                    ttft, raw = first_chunk_time(warm, name, prompt, options.reply_tokens)
                    times.append(ttft)
                    messages.append({"role": "assistant", "content": raw.removesuffix("<|im_end|>")})
                warm_ttft.append(times[-1])
                per_turn.append(times)
                prompt_tokens = len(warm.backend.engine(name).model.tokenize(prompt))
            with Client(threads=options.threads) as cold:
                cold.backend.engine(name)  # load first: only the request is timed
                cold_ttft.append(first_chunk_time(cold, name, prompt, options.reply_tokens)[0])
        warm_median, cold_median = statistics.median(warm_ttft), statistics.median(cold_ttft)
        turns = [statistics.median(t[i] for t in per_turn) for i in range(len(QUESTIONS))]
        rows.append([name, prompt_tokens, f"{1000 * warm_median:.1f} ms", f"{1000 * cold_median:.1f} ms",
                     f"{cold_median / warm_median:.1f}x"])
        print(f"{name}: time to first token per turn with prefix reuse (ms): "
              + " ".join(f"{1000 * t:.0f}" for t in turns))
        report.append({"model": name, "prompt_tokens": prompt_tokens, "warm_ttft_s": warm_ttft,
                       "cold_ttft_s": cold_ttft, "per_turn_ttft_s": turns})
    print_table(f"10th chat turn, time to first token (median of {options.repeats})",
                ["model", "prompt tokens", "prefix reuse", "cold", "speed-up"], rows)
    print(f"\nsaved {save('chat', report)}")


if __name__ == "__main__":
    main()
