"""Steering concepts.

- Making a concept's vectors for a model: 20 pairs, the first steered request's extra time over
  the same request once the vectors are cached. Target: < 5 s on smollm2-135m.
- A steered single request (128 tokens, T 0.8, top_k 40, top_p 0.9) vs the same unsteered, by
  turns: tokens/s ratio. Target: >= 0.95.
- Two concurrent requests with different steering (one steered, one steered the other way) vs two
  concurrent unsteered requests: aggregate tokens/s ratio (the cost of switching the context's
  control vector between grouped decodes). Target: >= 0.8.

    python -m bench.steering [--models smollm2-135m gemma-3-270m] [--tokens 128] [--repeats 5]
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

from edgecomplete import (AsyncClient, Client, CompletionRequest, Prompt, SteeringConceptCreationRequest,
                          SteeringPairedExample)
from edgecomplete.engine import LocalBackend
from edgecomplete.steering import ConceptStore

from .common import PROMPT, SAMPLING, arguments, interleaved_rates, model_path, print_table, save

# The tests' sentiment pairs (tests/engine/test_steering.py): negative -> positive.
PAIRS = [(p["negative"], p["positive"]) for p in map(json.loads, (Path(__file__).parents[1] / "tests" / "fixtures" /
                                                                  "sentiment_pairs.jsonl").read_text().splitlines())]


def main() -> None:
    parser = arguments(__doc__)
    options = parser.parse_args()
    rows, report = [], []
    for name in options.models:
        model_path(name)
        with tempfile.TemporaryDirectory() as folder:  # a fresh store: the vectors are made here
            backend = LocalBackend(threads=options.threads, prefix_cache=False,
                                   concepts=ConceptStore(Path(folder)))
            with Client(backend=backend) as client:
                concept = client.create_steering_concept(
                    SteeringConceptCreationRequest([SteeringPairedExample(n, p) for n, p in PAIRS])).id
                client.backend.engine(name)
                one_token = CompletionRequest(prompt=Prompt.from_text(PROMPT), maximum_tokens=1,
                                              steering_concepts=[concept])
                start = time.perf_counter()
                client.complete(one_token, name)  # makes the vectors
                first = time.perf_counter() - start
                start = time.perf_counter()
                client.complete(one_token, name)
                making = first - (time.perf_counter() - start)

                def request(steering=None, strength=1.0, seed=1):
                    fields = dict(steering_concepts=[concept], steering_strengths={concept: strength}) if steering else {}
                    return CompletionRequest(prompt=Prompt.from_text(PROMPT), maximum_tokens=options.tokens,
                                             minimum_tokens=options.tokens, seed=seed, **SAMPLING, **fields)

                def single(steering):
                    return client.complete(request(steering), name).num_tokens_generated

                def pair(steerings):
                    async def run():
                        async with AsyncClient(client=client) as aclient:
                            responses = await asyncio.gather(*(
                                aclient.complete(request(steering, strength, seed), name)
                                for seed, (steering, strength) in enumerate(steerings)))
                        return sum(r.num_tokens_generated for r in responses)
                    return asyncio.run(run())

                rates = interleaved_rates({
                    "unsteered": lambda: single(False),
                    "steered": lambda: single(True),
                    "2 unsteered": lambda: pair([(False, 1.0), (False, 1.0)]),
                    "2 steered apart": lambda: pair([(True, 1.0), (True, -1.0)]),
                }, options.repeats)
        single_ratio = rates["steered"]["tokens_per_s"] / rates["unsteered"]["tokens_per_s"]
        pair_ratio = rates["2 steered apart"]["tokens_per_s"] / rates["2 unsteered"]["tokens_per_s"]
        rows.append([name, f"{making:.2f}", f"{rates['unsteered']['tokens_per_s']:.1f}",
                     f"{rates['steered']['tokens_per_s']:.1f}", f"{single_ratio:.2f}",
                     f"{rates['2 unsteered']['tokens_per_s']:.1f}", f"{rates['2 steered apart']['tokens_per_s']:.1f}",
                     f"{pair_ratio:.2f}"])
        report.append({"model": name, "vectors_s": making, "rates": rates, "single_ratio": single_ratio,
                       "pair_ratio": pair_ratio, "tokens": options.tokens, "threads": options.threads})
    print_table("steering: vectors of 20 pairs (target < 5 s), one request (target >= 0.95), two requests "
                "with different steering vs two unsteered (target >= 0.8); tokens/s",
                ["model", "vectors s", "unsteered", "steered", "ratio", "2 unsteered", "2 steered apart", "ratio"],
                rows)
    print(f"\nsaved {save('steering', report)}")


if __name__ == "__main__":
    main()
