"""Jobs: a submitted request, and the outbox that carries its events from the llama thread to
one consumer, sync or async.

The engine thread never blocks on a consumer: it puts events without waiting and, when a
request's outbox is nearly full, leaves that request out of the next decode batches until the
consumer has taken some (`room`). A sync consumer blocks in `get`; an async one awaits `aget`,
woken through its event loop, so the loop never waits on the engine.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import weakref
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator, Optional

from ..plan import GenerationPlan
from .events import EngineEvent

if TYPE_CHECKING:
    from .engine import Engine

# Decode steps of events a consumer may leave untaken before its request pauses.
OUTBOX_STEPS = 64

CLOSED = object()  # the last item of every outbox


class Outbox:
    def __init__(self, capacity: int, on_take: Callable[[], None]):
        self.capacity = capacity
        self._items: collections.deque = collections.deque()
        self._ready = threading.Condition()
        self._wake_async: Optional[Callable[[], None]] = None
        self._on_take = on_take  # tells the engine that room was made

    def room(self) -> int:
        with self._ready:
            return self.capacity - len(self._items)

    def put(self, item: Any) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify()
            wake, self._wake_async = self._wake_async, None
        if wake:
            wake()

    def get(self) -> Any:
        with self._ready:
            while not self._items:
                self._ready.wait()
            item = self._items.popleft()
        self._on_take()
        return item

    async def aget(self) -> Any:
        loop = asyncio.get_running_loop()
        while True:
            with self._ready:
                if self._items:
                    item = self._items.popleft()
                    break
                arrived = asyncio.Event()
                self._wake_async = lambda: _call_soon(loop, arrived.set)
            await arrived.wait()
        self._on_take()
        return item


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], Any]) -> None:
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:  # the consumer's loop is closed: nobody is waiting any more
        pass


class Job:
    """A submitted request. Iterate `events()` (sync) or `aevents()` (async); leaving either
    early, or `cancel()`, stops the request before the engine's next decode step."""

    def __init__(self, plan: GenerationPlan, engine: "Engine"):
        self.plan = plan
        self._engine = weakref.ref(engine)
        self.outbox = Outbox(OUTBOX_STEPS * 2 * len(plan.samplers) + 8, on_take=engine.wake)
        self.cancelled = False
        self.finished = False

    def cancel(self) -> None:
        if not self.finished and not self.cancelled:
            self.cancelled = True
            engine = self._engine()
            if engine:
                engine.wake()

    def close(self, error: Optional[BaseException] = None) -> None:
        """The engine's last word on this job: an error for the consumer, if any, then the end."""
        if error is not None:
            self.outbox.put(error)
        self.outbox.put(CLOSED)

    def _item(self, item):
        if item is CLOSED:
            self.finished = True
            return None
        if isinstance(item, BaseException):
            self.finished = True
            raise item
        return item

    def events(self) -> Iterator[EngineEvent]:
        try:
            while (item := self._item(self.outbox.get())) is not None:
                yield item
        finally:
            self.cancel()

    async def aevents(self) -> AsyncIterator[EngineEvent]:
        try:
            while (item := self._item(await self.outbox.aget())) is not None:
                yield item
        finally:
            self.cancel()
