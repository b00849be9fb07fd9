"""The HTTP server.

- Throughput: 8 concurrent streaming clients on POST /v1/completions (T 0.8, top_k 40, top_p 0.9,
  EOS banned so that every client gets all its tokens), aggregate tokens/s of `edgecomplete serve`
  vs llama-cpp-python's own OpenAI server (`python -m llama_cpp.server`, its [server] extra; one
  request at a time, `--interrupt_requests False` so that a new request waits instead of cutting
  the running one) on the same GGUF, threads and flash attention, run by turns. Target: >= 1.5.
- HTTP overhead: one streaming client, the time to the first event over HTTP (POST /v1/complete to
  `edgecomplete serve`) minus the time to the first StreamChunk of the in-process Client on the
  same model and prompt, in 100 pairs (a fresh prompt each, which goes first alternates): the
  median of the pairs' differences, for a 1-token request and for a 64-token stream. Target: <= 5 ms.
- Memory: the server's peak RSS (VmHWM) after the 8-client run vs a process running the same
  engine in-process with the same 8 concurrent requests. Target: within 50 MB.

    python -m bench.serve [--models smollm2-135m] [--tokens 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import httpx

from .common import PROMPT, SAMPLING, arguments, model_path, print_table, save

CLIENTS = 8
TTFT_PAIRS = 100
TTFT_LENGTHS = (1, 64)  # tokens of the requests whose first token is timed
PROMPTS = [PROMPT, "A practical guide to keeping bees starts with", "The spaceship's engine room was",
           "Grandmother's recipe for apple cake calls for", "The committee's report on the new bridge found",
           "Deep in the forest, the old mill", "Our quarterly results show that", "The first rule of sailing is"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc")


class Server:
    """A server process on a free loopback port, up once it answers `ready_path`."""

    def __init__(self, command: List[str], ready_path: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([*command, "--port", str(self.port)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(self.url + ready_path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{' '.join(command)} did not start")
            time.sleep(0.3)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def stream_tokens(http: httpx.AsyncClient, url: str, body: Dict) -> int:
    """Tokens of one streamed /v1/completions answer (each event of either server is one token,
    or the usage event that ends edgecomplete's)."""
    tokens = 0
    async with http.stream("POST", f"{url}/v1/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                return event["usage"]["completion_tokens"]
            if event["choices"] and event["choices"][0]["text"]:
                tokens += 1
    return tokens


def concurrent_rate(url: str, bodies: List[Dict]) -> float:
    async def run():
        async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=CLIENTS * 2)) as http:
            start = time.perf_counter()
            counts = await asyncio.gather(*(stream_tokens(http, url, body) for body in bodies))
            return sum(counts) / (time.perf_counter() - start)
    return asyncio.run(run())


def first_event_seconds(http: httpx.Client, url: str, body: Dict) -> float:
    """Seconds to the first event of a streamed completion, on a kept-alive connection (a new
    httpx client per request would add its own set-up, some 20 ms, to every figure)."""
    start = time.perf_counter()
    with http.stream("POST", f"{url}/v1/complete", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                elapsed = time.perf_counter() - start
                break
    return elapsed


def in_process_peak(name: str, threads: int, tokens: int, ends: List[int]) -> None:
    """Child mode: the same engine as the server, 8 concurrent requests in-process; prints VmHWM."""
    from edgecomplete import AsyncClient, CompletionRequest, Prompt

    async def run():
        async with AsyncClient(threads=threads) as client:
            requests = [CompletionRequest(prompt=Prompt.from_text(PROMPTS[i]), maximum_tokens=tokens, seed=i,
                                          logit_bias={t: -100.0 for t in ends}, **SAMPLING) for i in range(CLIENTS)]
            await asyncio.gather(*(client.complete(request, name) for request in requests))
    asyncio.run(run())
    print(json.dumps({"peak_rss_mb": peak_rss_mb(os.getpid())}))


def main() -> None:
    parser = arguments(__doc__)
    parser.set_defaults(models=["smollm2-135m"], repeats=3)
    parser.add_argument("--in-process-peak", nargs=2, metavar=("END_TOKENS", "MODEL"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.in_process_peak:
        ends, name = options.in_process_peak
        in_process_peak(name, options.threads, options.tokens, [int(t) for t in ends.split(",")])
        return
    from edgecomplete import Client, CompletionRequest, Prompt, StreamChunk

    rows, report = [], []
    for name in options.models:
        path = model_path(name)
        with Client(threads=options.threads) as client:
            # Banned on both servers: every client gets all its tokens.
            ends = client.backend.engine(name).model.end_of_generation_tokens()

            ours = Server([sys.executable, "-m", "edgecomplete", "serve", "--model", name,
                           "--threads", str(options.threads)], "/version")
            reference = Server([sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--n_threads",
                                str(options.threads), "--n_threads_batch", str(options.threads), "--flash_attn", "true",
                                "--interrupt_requests", "false", "--n_ctx", "4096"], "/v1/models")
            try:
                common = dict(max_tokens=options.tokens, temperature=SAMPLING["temperature"], top_p=SAMPLING["top_p"],
                              logit_bias={str(t): -100 for t in ends}, stream=True)
                ours_bodies = [dict(common, model=name, prompt=PROMPTS[i], seed=i, top_k=SAMPLING["top_k"],
                                    stream_options={"include_usage": True}) for i in range(CLIENTS)]
                reference_bodies = [dict(common, model=name, prompt=PROMPTS[i], seed=i, top_k=SAMPLING["top_k"],
                                         min_p=0.0, repeat_penalty=1.0) for i in range(CLIENTS)]
                rates: Dict[str, List[float]] = {"edgecomplete serve": [], "llama_cpp.server": []}
                concurrent_rate(ours.url, ours_bodies[:2])  # warm-up
                concurrent_rate(reference.url, reference_bodies[:2])
                for _ in range(options.repeats):
                    rates["edgecomplete serve"].append(concurrent_rate(ours.url, ours_bodies))
                    time.sleep(0.5)  # the other server's OpenMP threads go to sleep
                    rates["llama_cpp.server"].append(concurrent_rate(reference.url, reference_bodies))
                    time.sleep(0.5)
                server_peak = peak_rss_mb(ours.process.pid)

                # Time to first token: over HTTP and in-process in pairs on the same fresh prompt (which
                # goes first alternates); the overhead is the median of the pairs' differences. Two
                # lengths: a 1-token request (nothing runs after the first token: what HTTP itself
                # costs) and a 64-token stream (its next decodes busy both cores while the first
                # event travels through the server and the client process).
                first_token = {length: {"http": [], "in_process": []} for length in TTFT_LENGTHS}
                http = httpx.Client(timeout=120)

                def in_process(text: str, length: int) -> float:
                    start = time.perf_counter()
                    request = CompletionRequest(prompt=Prompt.from_text(text), maximum_tokens=length)
                    items = client.complete_with_streaming(request, name)
                    try:
                        for item in items:
                            if isinstance(item, StreamChunk):
                                return time.perf_counter() - start
                    finally:
                        items.close()
                    raise RuntimeError("no StreamChunk")

                for i in range(TTFT_PAIRS):
                    for length, times in first_token.items():
                        text = f"{PROMPTS[i % CLIENTS]} (note {i}, {length})"
                        body = {"model": name, "prompt": text, "maximum_tokens": length, "stream": True}
                        for turn in ((0, 1) if i % 2 else (1, 0)):
                            time.sleep(0.1)  # the other process's OpenMP threads stop spinning
                            if turn == 0:
                                times["http"].append(first_event_seconds(http, ours.url, body))
                            else:
                                times["in_process"].append(in_process(text, length))
                http.close()
            finally:
                ours.stop()
                reference.stop()

        child = subprocess.run([sys.executable, "-m", "bench.serve", "--threads", str(options.threads), "--tokens",
                                str(options.tokens), "--in-process-peak", ",".join(map(str, ends)), name],
                               capture_output=True, text=True, check=True)
        in_process = json.loads(child.stdout.strip().splitlines()[-1])["peak_rss_mb"]

        ours_rate = statistics.median(rates["edgecomplete serve"])
        reference_rate = statistics.median(rates["llama_cpp.server"])
        overhead_ms = {length: statistics.median(h - l for h, l in zip(times["http"], times["in_process"])) * 1000
                       for length, times in first_token.items()}
        local_ms = {length: statistics.median(times["in_process"]) * 1000 for length, times in first_token.items()}
        rows.append([name, f"{ours_rate:.1f}", f"{reference_rate:.1f}", f"{ours_rate / reference_rate:.2f}",
                     *(f"{local_ms[n]:.1f} / {overhead_ms[n]:+.1f}" for n in TTFT_LENGTHS), f"{server_peak:.0f}", f"{in_process:.0f}", f"{server_peak - in_process:+.0f}"])
        report.append({"model": name, "clients": CLIENTS, "tokens": options.tokens, "threads": options.threads,
                       "tokens_per_s": rates, "ratio": ours_rate / reference_rate,
                       "first_token_s": first_token,
                       "http_overhead_ms": overhead_ms,
                       "peak_rss_mb": {"server": server_peak, "in_process": in_process}})
    print_table(f"{CLIENTS} streaming clients (aggregate tokens/s; target ratio >= 1.5), time to first token "
                "(target HTTP - in-process <= 5 ms), peak RSS (target within 50 MB)",
                ["model", "serve t/s", "llama_cpp.server t/s", "ratio",
                 *(f"TTFT {n}-token: in-process / HTTP overhead ms" for n in TTFT_LENGTHS),
                 "serve MB", "in-process MB", "difference MB"], rows)
    print(f"\nsaved {save('serve', report)}")


if __name__ == "__main__":
    main()
