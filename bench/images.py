"""Images in prompts: edgecomplete vs llama-cpp-python's Llava15ChatHandler, same projector.

No vision model can be fetched here, so both engines run the synthetic projector of the tests
(tests/fixtures/projector.py: 16 image positions for smollm2-135m, Gemma 3's kind with 4 for
gemma-3-270m) on the same GGUF, threads and attention setting, with the same prompt text (the
handler's llava template, written out for edgecomplete). Each run is one token, so its time is
the time to the first token.

- First turn: a system prompt, an image never seen before and a question; edgecomplete without
  prefix slots (nothing of an earlier prompt reused), as the handler. Target: >= 1.0x.
- Follow-up turn: the conversation with the reply edgecomplete generated to the first turn (greedy,
  REPLY_TOKENS tokens) and a second question. The handler resets its context on every call and
  evaluates it all again, image included; edgecomplete keeps the last turn's cells (prefix slots:
  prompt and reply) and evaluates only the new tokens. Target: >= 5x.
  (gemma-3-270m attends over a sliding window in some layers, whose cells llama.cpp overwrites:
  edgecomplete keeps no prefix slots for such models, so it evaluates the whole turn too.)

    python -m bench.images [--models smollm2-135m gemma-3-270m] [--repeats 7]
"""

from __future__ import annotations

import base64
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Optional

from llama_cpp import Llama
from llama_cpp.llama_chat_format import Llava15ChatHandler
from PIL import Image as PILImage

from jinja2.sandbox import ImmutableSandboxedEnvironment

from edgecomplete import Client, CompletionRequest, Image, Prompt
from edgecomplete.prompt import IMAGE_MARKER, with_images
from edgecomplete.engine import on_llama_thread
from tests.fixtures.projector import write_projector

from .common import arguments, model_path, print_table, save

SYSTEM = ("You are a careful assistant who describes pictures for people who cannot see them. Say what is in "
          "the picture, where things are, their colours and shapes, and anything written in it. Be precise and "
          "brief; never guess what you cannot see; if the picture is unclear, say so and describe what is clear. "
          "Answer in plain sentences without lists. ") * 2
QUESTION = "What is in this picture, and what colour is it mostly?"
REPLY_TOKENS = 24
FOLLOW_UP = "Which colour is the stripe, and is it near the top or the bottom?"
WIDTHS = {"smollm2-135m": ("mlp", 576), "gemma-3-270m": ("gemma3", 640)}


def picture(index: int) -> bytes:
    """A PNG no earlier run has shown (another colour each time)."""
    canvas = PILImage.new("RGB", (64, 64), ((37 * index) % 256, (91 * index) % 256, (53 * index + 100) % 256))
    canvas.paste((255 - (37 * index) % 256, 0, 0), (0, 20 + index % 30, 64, 28 + index % 30))
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG")
    return buffer.getvalue()


def handler_messages(png: bytes, reply: Optional[str]):
    """The conversation, with the follow-up question after `reply` when there is one."""
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                             {"type": "text", "text": QUESTION}]}]
    if reply is not None:
        messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": FOLLOW_UP}]
    return messages


def our_prompt(png: bytes, reply: Optional[str]) -> Prompt:
    """The text the handler renders (its llava template, as its own Jinja settings render it), the
    image where its URL goes."""
    messages = handler_messages(png, reply)
    url = messages[1]["content"][0]["image_url"]["url"]
    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(
        Llava15ChatHandler.CHAT_FORMAT)
    text = template.render(messages=messages, add_generation_prompt=True)
    return with_images(text.replace(url, IMAGE_MARKER), [Image.from_bytes(png)])


def seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = arguments(__doc__)
    parser.set_defaults(repeats=15)
    options = parser.parse_args()
    rows, report = [], []
    with tempfile.TemporaryDirectory() as folder:
        for name in options.models:
            kind, width = WIDTHS[name]
            projector = write_projector(Path(folder) / f"{name}-mmproj.gguf", embedding_size=width, kind=kind)
            path = model_path(name)
            llama = on_llama_thread(lambda: Llama(
                str(path), n_ctx=2048, n_threads=options.threads, n_threads_batch=options.threads, flash_attn=True,
                verbose=False, chat_handler=Llava15ChatHandler(clip_model_path=str(projector), verbose=False)))

            def theirs(png: bytes, reply: Optional[str]):
                on_llama_thread(lambda: llama.create_chat_completion(
                    messages=handler_messages(png, reply), max_tokens=1, temperature=0.0))

            options_ = dict(threads=options.threads, flash_attention=True, mmproj={name: projector}, context_length=2048)
            with Client(**options_) as chat, Client(prefix_cache=False, **options_) as cold:
                def ours(client: Client, png: bytes, reply: Optional[str], tokens: int = 1) -> str:
                    request = CompletionRequest(prompt=our_prompt(png, reply), maximum_tokens=tokens, temperature=0.0,
                                                disable_optimizations=True)
                    return client.complete(request, name).completions[0].completion

                times = {"first ours": [], "first theirs": [], "follow ours": [], "follow theirs": []}
                for run in range(options.repeats + 1):  # the first round warms up and is dropped
                    png = picture(run)
                    first = {"first ours": seconds(lambda: ours(cold, png, None)),
                             "first theirs": seconds(lambda: theirs(png, None))}
                    reply = ours(chat, png, None, REPLY_TOKENS)  # the first turn of the chat (its cells stay)
                    follow = {"follow ours": seconds(lambda: ours(chat, png, reply)),
                              "follow theirs": seconds(lambda: theirs(png, reply))}
                    if run:
                        for key, value in {**first, **follow}.items():
                            times[key].append(value)
                stats = chat.backend.engine(name).stats()
            on_llama_thread(llama.close)
            median = {key: statistics.median(values) * 1000 for key, values in times.items()}
            first_ratio = median["first theirs"] / median["first ours"]
            follow_ratio = median["follow theirs"] / median["follow ours"]
            rows.append([name, kind, f"{median['first ours']:.1f}", f"{median['first theirs']:.1f}", f"{first_ratio:.2f}",
                         f"{median['follow ours']:.1f}", f"{median['follow theirs']:.1f}", f"{follow_ratio:.2f}"])
            report.append({"model": name, "projector": kind, "median_ms": median, "first_ratio": first_ratio,
                           "follow_up_ratio": follow_ratio, "all_s": times, "threads": options.threads,
                           "chat_engine_stats": stats})
    print_table("images: time to first token, ms (median), edgecomplete vs llama-cpp-python's Llava15ChatHandler "
                "(ratio: theirs / ours; first turn target >= 1.0, follow-up target >= 5)",
                ["model", "projector", "first ours", "first theirs", "ratio", "follow-up ours", "follow-up theirs",
                 "ratio"], rows)
    print(f"\nsaved {save('images', report)}")


if __name__ == "__main__":
    main()
