"""First-come, first-served execution slots (global and per flow)."""

from __future__ import annotations

import asyncio
from collections import deque


class Slots:
    """A FIFO counting semaphore whose limit can change while in use."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_acquire(self) -> bool:
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot was handed over just as we were cancelled
            else:
                self._waiters.remove(future)
            raise

    def release(self) -> None:
        if self.in_use <= self.limit:
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # hand the slot over: in_use stays the same
                    return
        self.in_use -= 1

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())
