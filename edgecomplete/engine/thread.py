"""The llama thread: the one thread of the process that runs llama.cpp, for every engine in turn.

llama.cpp's CPU backend uses OpenMP, whose worker teams belong to the calling thread: once two
threads have called llama_decode, libgomp stops spinning at its barriers and every decode gets
much slower. So every model's decode loop (an Engine) runs here, one step each in turn, and
`on_llama_thread` runs other llama.cpp work (loading a model, a llama-cpp-python model of the
user's) between two steps.
"""

from __future__ import annotations

import collections
import logging
import threading
from concurrent.futures import Future
from typing import Callable, List, Optional, Protocol, TypeVar

T = TypeVar("T")
log = logging.getLogger("edgecomplete")


class Steppable(Protocol):
    """What the llama thread drives: an engine's decode loop."""

    def has_work(self) -> bool:
        """Whether a step would do anything (called under `llama_thread.lock`)."""

    def admit(self) -> None:
        """Take waiting requests in while they fit (called under `llama_thread.lock`)."""

    def step(self) -> None:
        """One decode step for every running request (called without the lock)."""


class LlamaThread:
    """Runs queued calls and engine steps; sleeps on `lock` (a Condition) while there is none.
    Engines and their submitters notify it under the lock."""

    def __init__(self):
        self.lock = threading.Condition()
        self._engines: List[Steppable] = []
        self._calls: collections.deque = collections.deque()  # (callable, future)
        self.thread: Optional[threading.Thread] = None

    def add(self, engine: Steppable) -> None:
        with self.lock:
            self._engines.append(engine)

    def remove(self, engine: Steppable) -> None:  # under self.lock
        if engine in self._engines:
            self._engines.remove(engine)

    def start(self) -> None:  # under self.lock
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._loop, name="edgecomplete-llama", daemon=True)
            self.thread.start()

    def call(self, function: Callable[[], T]) -> T:
        if threading.current_thread() is self.thread:
            return function()
        future: Future = Future()
        with self.lock:
            self._calls.append((function, future))
            self.start()
            self.lock.notify()
        return future.result()

    def _loop(self) -> None:
        while True:
            with self.lock:
                while not self._calls and not any(e.has_work() for e in self._engines):
                    self.lock.wait()
                call = self._calls.popleft() if self._calls else None
                busy = [e for e in self._engines if e.has_work()]
                for engine in busy:
                    _guarded(engine.admit)
            if call is not None:
                function, future = call
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(function())
                    except BaseException as error:  # handed to the caller
                        future.set_exception(error)
            for engine in busy:
                _guarded(engine.step)


def _guarded(work: Callable[[], None]) -> None:
    """An engine's admit or step: the engines fail their own requests on errors; anything that
    still escapes is logged, and the thread goes on serving (a dead llama thread would leave every
    waiting caller waiting)."""
    try:
        work()
    except Exception:
        log.exception("edgecomplete's llama thread: an engine failed outside a request; serving on")


llama_thread = LlamaThread()


def on_llama_thread(function: Callable[[], T]) -> T:
    """Run `function` on the thread that runs llama.cpp for edgecomplete, and return its result.

    Use it for other llama.cpp work in the same process (a llama-cpp-python model, say), so that
    llama.cpp's OpenMP worker teams are not duplicated per thread (which slows every decode).
    """
    return llama_thread.call(function)
