"""Remote engines: what edgecomplete's mapping costs in front of llama.cpp's llama-server.

- Client over the `llama-server` backend vs plain HTTP calls (httpx, one kept-alive connection) to
  llama-server's /completion with the same body, one request at a time, 128 tokens (T 0.8,
  top_k 40, top_p 0.9, EOS banned), by turns: tokens/s ratio. Target: >= 0.95.
- 8 concurrent streaming clients of the Aleph API (POST /complete, stream) on `edgecomplete serve
  --backend <llama-server> --protocol llama-server` vs the same 8 streams sent to llama-server's
  /completion directly (`--parallel 8`), by turns: aggregate tokens/s ratio. Target: >= 0.9.

llama-server is built from the llama.cpp source llama-cpp-python 0.3.36 vendors (tests/servers).

    python -m bench.remote [--models smollm2-135m] [--tokens 128] [--repeats 5]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Dict

import httpx

from edgecomplete import Client, CompletionRequest, Prompt
from tests.servers import llama_server

from .common import PROMPT, SAMPLING, arguments, model_path, print_table, save
from .serve import PROMPTS, Server

CLIENTS = 8


def end_token(url: str) -> int:
    """The model's end-of-sequence token id, banned so that every request gets all its tokens."""
    text = httpx.get(f"{url}/props").json()["eos_token"]
    (token,) = httpx.post(f"{url}/tokenize", json={"content": text, "parse_special": True}).json()["tokens"]
    return int(token)


def direct_body(prompt: str, tokens: int, seed: int, end: int, stream: bool) -> Dict:
    """The /completion body the backend sends for such a request (its sampler settings)."""
    return {"prompt": prompt, "n_predict": tokens, "temperature": SAMPLING["temperature"], "top_k": SAMPLING["top_k"],
            "top_p": SAMPLING["top_p"], "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0, "dry_multiplier": 0.0,
            "xtc_probability": 0.0, "top_n_sigma": -1.0, "mirostat": 0, "dynatemp_range": 0.0, "seed": seed,
            "logit_bias": [[end, -100.0]], "cache_prompt": False, "stream": stream, "return_tokens": True}


async def direct_stream(http: httpx.AsyncClient, url: str, body: Dict) -> int:
    tokens = 0
    async with http.stream("POST", f"{url}/completion", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                event = json.loads(line[6:])
                tokens += 0 if event.get("stop") else 1
    return tokens


async def aleph_stream(http: httpx.AsyncClient, url: str, body: Dict) -> int:
    async with http.stream("POST", f"{url}/complete", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                event = json.loads(line[6:])
                if event.get("type") == "completion_summary":
                    return event["num_tokens_generated"]
    return 0


def concurrent(streams) -> float:
    async def run():
        async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=CLIENTS * 2)) as http:
            start = time.perf_counter()
            counts = await asyncio.gather(*(stream(http) for stream in streams))
            return sum(counts) / (time.perf_counter() - start)
    return asyncio.run(run())


def main() -> None:
    parser = arguments(__doc__)
    parser.set_defaults(models=["smollm2-135m"])
    options = parser.parse_args()
    rows, report = [], []
    binary = llama_server.build()
    for name in options.models:
        path = model_path(name)
        server = Server([str(binary), "-m", str(path), "--host", "127.0.0.1", "--parallel", str(CLIENTS),
                         "-c", str(CLIENTS * 512), "-t", str(options.threads), "-fa", "on", "--log-disable"], "/health")
        gateway = None
        try:
            with Client(host=server.url, backend="llama-server") as client:
                eos = end_token(server.url)
                request = CompletionRequest(prompt=Prompt.from_text(PROMPT), maximum_tokens=options.tokens,
                                            seed=1, logit_bias={eos: -100.0}, **SAMPLING)
                plain = httpx.Client(timeout=600)
                single = {"ours": [], "direct": []}
                for run in range(options.repeats + 1):
                    start = time.perf_counter()
                    ours = client.complete(request, name).num_tokens_generated
                    ours_rate = ours / (time.perf_counter() - start)
                    start = time.perf_counter()
                    answer = plain.post(f"{server.url}/completion",
                                        json=direct_body(PROMPT, options.tokens, 1, eos, False)).json()
                    direct_rate = answer["tokens_predicted"] / (time.perf_counter() - start)
                    if run:  # the first round warms up
                        single["ours"].append(ours_rate)
                        single["direct"].append(direct_rate)
                plain.close()
            gateway = Server([sys.executable, "-m", "edgecomplete", "serve", "--model", name, "--backend", server.url,
                              "--protocol", "llama-server"], "/version")
            many = {"gateway": [], "direct": []}
            aleph_bodies = [{"model": name, "prompt": PROMPTS[i], "maximum_tokens": options.tokens, "seed": i,
                             "logit_bias": {str(eos): -100.0}, "stream": True, **SAMPLING} for i in range(CLIENTS)]
            direct_bodies = [direct_body(PROMPTS[i], options.tokens, i, eos, True) for i in range(CLIENTS)]
            for run in range(options.repeats + 1):
                via = concurrent([lambda http, b=b: aleph_stream(http, gateway.url, b) for b in aleph_bodies])
                straight = concurrent([lambda http, b=b: direct_stream(http, server.url, b) for b in direct_bodies])
                if run:
                    many["gateway"].append(via)
                    many["direct"].append(straight)
        finally:
            if gateway is not None:
                gateway.stop()
            server.stop()
        medians = {key: statistics.median(values) for key, values in {**single, **{f"8 {k}": v for k, v in many.items()}}.items()}
        single_ratio = medians["ours"] / medians["direct"]
        many_ratio = medians["8 gateway"] / medians["8 direct"]
        rows.append([name, f"{medians['ours']:.1f}", f"{medians['direct']:.1f}", f"{single_ratio:.2f}",
                     f"{medians['8 gateway']:.1f}", f"{medians['8 direct']:.1f}", f"{many_ratio:.2f}"])
        report.append({"model": name, "medians": medians, "single_ratio": single_ratio, "gateway_ratio": many_ratio,
                       "single": single, "many": many, "tokens": options.tokens, "threads": options.threads})
    print_table("remote: edgecomplete over llama-server vs llama-server directly, tokens/s (targets: one request "
                ">= 0.95, 8 streams through serve --backend >= 0.9)",
                ["model", "Client", "direct", "ratio", "8 via serve --backend", "8 direct", "ratio"], rows)
    print(f"\nsaved {save('remote', report)}")


if __name__ == "__main__":
    main()
