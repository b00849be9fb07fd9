"""The terminal UI streams at the engine's speed and answers keys while it does.

- The same greedy 512-token chat request through the real app (Textual's headless App.run_test()
  on the real model; timed from the Enter key to the frame that shows the finished reply) and
  through AsyncClient.complete_with_streaming (timed from the call to the last item), taking turns
  in one process: tokens/s and their ratio. Target: >= 0.9. The same for the playground (F5) and
  for three candidates side by side (n=3, sampled, seeded).
- While a chat reply streams, characters typed into the chat input: the time from each key's
  arrival to the first frame that shows it. Target: p95 <= 50 ms.

The app draws every frame into a null terminal: Textual's headless driver skips turning frames
into escape sequences, and a real terminal pays for that, so the benchmark does too.

    python -m bench.tui [--tokens 512] [--repeats 3] [--keys 40]
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional

from textual import events
from textual.drivers import headless_driver
from textual.drivers.headless_driver import HeadlessDriver
from textual.widgets import Input

from edgecomplete import AsyncClient, Client, CompletionRequest
from tui import EdgeCompleteApp
from tui.config import Config

from .common import arguments, model_path, print_table, save

QUESTION = "Write a long story about a lighthouse keeper and a storm."
BUFFER = "The history of the old harbour town begins in the twelfth century, when"


class NullTerminal(HeadlessDriver):
    """A headless driver whose app renders every frame as for a terminal, and which notes when
    each frame was written (the moment a terminal would show it)."""

    on_frame: Optional[Callable[[], None]] = None

    @property
    def is_headless(self) -> bool:
        return False

    def write(self, data: str) -> None:
        if NullTerminal.on_frame is not None:
            NullTerminal.on_frame()


class Bench:
    def __init__(self, app: EdgeCompleteApp, pilot, client: AsyncClient, model: str, tokens: int):
        self.app, self.pilot, self.client, self.model, self.tokens = app, pilot, client, model, tokens

    async def until(self, condition: Callable[[], bool], timeout: float = 600.0, every: float = 0.005) -> None:
        """Wait for `condition`. Times are taken by the frame callbacks, not here: where only the
        next step waits, a slow poll (`every`) keeps the harness's own wake-ups off the UI thread."""
        deadline = time.perf_counter() + timeout
        while not condition():
            if time.perf_counter() > deadline:
                raise TimeoutError("the app did not get there in time")
            await asyncio.sleep(every)

    def set_params(self, **values) -> None:
        for name, value in values.items():
            self.app.query_one(f"#param-{name}", Input).value = "" if value is None else str(value)

    def press(self, key: str, character: Optional[str] = None) -> float:
        """Deliver a key as the terminal driver does (from outside the app's queue); its time."""
        now = time.perf_counter()
        self.app._driver.send_message(events.Key(key, character))
        return now

    async def app_run(self, mode: str, on_streaming: Optional[Callable] = None) -> tuple:
        """One generation through the app, from the key that starts it to the frame that shows it
        finished. Returns (seconds, tokens generated, the request the app sent)."""
        app, view = self.app, self.app.view
        await app.action_new_session()
        await self.pilot.pause(0.1)
        finished: List[float] = []

        def frame() -> None:
            if started and not finished and not view.generating and result() is not None:
                finished.append(time.perf_counter())

        if mode == "chat":
            chat_input = app.query_one("#chat-input")
            chat_input.load_text(QUESTION)
            chat_input.focus()
            key = "enter"

            def result():
                turns = view.session.turns
                return turns[-1] if len(turns) == 2 and turns[-1].response is not None else None
        else:
            app.query_one("#playground-buffer").load_text(BUFFER)
            app.query_one("#playground-buffer").focus()
            key = "f5"

            def result():
                return view.pending
        await self.pilot.pause(0.1)
        started = False
        NullTerminal.on_frame = frame
        try:
            start = self.press(key)
            started = True
            if on_streaming is not None:
                await self.until(lambda: view.generating and app.stats.generated > 0)
                await on_streaming()
            await self.until(lambda: bool(finished), every=0.05)
        finally:
            NullTerminal.on_frame = None
        turn = result()
        response = turn.response
        generated = response["num_tokens_generated"]
        return finished[0] - start, generated, CompletionRequest.from_json(turn.request)

    async def client_run(self, request: CompletionRequest) -> tuple:
        start = time.perf_counter()
        tokens = 0
        async for item in self.client.complete_with_streaming(request, self.model):
            tokens += len(getattr(item, "completion_tokens", None) or [])
        return time.perf_counter() - start, tokens

    async def rates(self, mode: str, repeats: int, **params) -> dict:
        self.app.show_mode(mode)
        self.set_params(**params)
        await self.pilot.pause(0.1)
        _, _, request = await self.app_run(mode)  # warm-up, and the exact request
        await self.client_run(request)
        ours, theirs = [], []
        for _ in range(repeats):
            seconds, generated, _ = await self.app_run(mode)
            ours.append(generated / seconds)
            seconds, generated = await self.client_run(request)
            theirs.append(generated / seconds)
        return {"tui": statistics.median(ours), "client": statistics.median(theirs), "all_tui": ours,
                "all_client": theirs}

    async def key_latencies(self, keys: int) -> List[float]:
        """Type `keys` characters into the chat input while a reply streams, one every 60-100 ms
        (a quick typist); each key's time from arrival to the frame showing it."""
        self.app.show_mode("chat")
        latencies: List[float] = []
        chat_input = self.app.query_one("#chat-input")

        async def type_while_streaming() -> None:
            chat_input.load_text("")
            chat_input.focus()
            await self.pilot.pause(0.05)
            for i in range(keys):
                if not self.app.view.generating:
                    break
                character = "abcdefghij"[i % 10]
                shown = len(chat_input.text) + 1
                seen: List[float] = []

                def frame() -> None:
                    if not seen and len(chat_input.text) >= shown:
                        seen.append(time.perf_counter())

                previous, NullTerminal.on_frame = NullTerminal.on_frame, frame
                arrived = self.press(character, character)
                await self.until(lambda: bool(seen), timeout=10, every=0.02)
                NullTerminal.on_frame = previous
                latencies.append(seen[0] - arrived)
                await asyncio.sleep(0.06 + 0.04 * ((i * 7) % 5) / 4)
            chat_input.load_text("")

        # The question is typed, the reply streams, and the typing happens meanwhile.
        await self.app_run("chat", on_streaming=type_while_streaming)
        return latencies


def percentile(values: List[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def main() -> None:
    parser = arguments(__doc__)
    parser.set_defaults(models=["smollm2-135m"], tokens=512, repeats=3)
    parser.add_argument("--keys", type=int, default=40, help="keys typed while a reply streams")
    parser.add_argument("--cases", nargs="+", default=["chat", "playground", "candidates"],
                        choices=["chat", "playground", "candidates"])
    options = parser.parse_args()
    name = options.models[0]
    model_path(name)
    # No prefix reuse: every run evaluates its prompt, as the first turn of a chat does.
    client = Client(threads=options.threads, prefix_cache=False)
    client.backend.engine(name)
    rows, report = [], {}

    async def run() -> None:
        data = Path(tempfile.mkdtemp(prefix="edgecomplete-bench-tui-"))
        app = EdgeCompleteApp(model=name, client=client, data=data, config=Config())
        async_client = AsyncClient(client=client)
        headless_driver.HeadlessDriver = NullTerminal  # the driver run_test starts, for this app
        try:
            async with app.run_test(size=(120, 36)) as pilot:
                bench = Bench(app, pilot, async_client, name, options.tokens)
                await bench.until(lambda: app.stats.context_length > 0)
                greedy = dict(maximum_tokens=options.tokens, minimum_tokens=options.tokens, temperature=0.0, n=1,
                              seed=None)
                cases = {
                    "chat": ("chat, greedy", "chat", greedy),
                    "playground": ("playground, greedy", "playground", greedy),
                    "candidates": ("chat, n=3 (T 0.8, seed 1)", "chat",
                                   {**greedy, "n": 3, "temperature": 0.8, "seed": 1}),
                }
                for label, mode, params in (cases[case] for case in options.cases):
                    rates = await bench.rates(mode, options.repeats, **params)
                    report[label] = rates
                    rows.append([label, f"{rates['tui']:.1f}", f"{rates['client']:.1f}",
                                 f"{rates['tui'] / rates['client']:.2f}"])
                bench.set_params(**greedy)
                report["key_latency_s"] = await bench.key_latencies(options.keys) if options.keys else []
        finally:
            headless_driver.HeadlessDriver = HeadlessDriver

    asyncio.run(run())
    client.close()
    print_table(f"terminal UI vs AsyncClient, {name}, {options.tokens} tokens per candidate (median of "
                f"{options.repeats}, tokens/s; ratio > 1: the UI is faster)",
                ["case", "tui tok/s", "AsyncClient tok/s", "ratio"], rows)
    latencies = report["key_latency_s"]
    if latencies:
        print(f"\nkeypress to screen while a reply streams ({len(latencies)} keys): "
              f"median {1000 * statistics.median(latencies):.1f} ms, p95 {1000 * percentile(latencies, 95):.1f} ms, "
              f"max {1000 * max(latencies):.1f} ms")
    print(f"\nsaved {save('tui', report)}")


if __name__ == "__main__":
    main()
