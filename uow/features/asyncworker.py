"""The worker thread behind an AsyncSession: calls run one after another, and how a cancellation ends.

As aiosqlite does for sqlite3, one thread per session runs every call that may block; the event
loop only awaits a future.  This module knows nothing of sessions: it runs functions, counts the
calls in flight (queued or running), and tells its owner when the first one starts and when the
last one ends (``handed_over``), which is when an AsyncSession moves its objects between the
worker and the loop's thread.  What a cancellation of the awaiting task does is decided here:

* a call still queued is withdrawn: it never runs;
* a call already running finishes; the CancelledError is raised once it has, so the caller never
  sees a cancellation while its call is half done;
* a ``cleanup`` call (the end of an ``async with`` block, close) is never withdrawn.
"""

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")


class Worker:
    """One thread running calls in order; ``handed_over(thread)`` is called (under the worker's lock)
    with the worker's thread when a call is submitted while none was in flight, and with ``home``,
    the thread that awaits, when the last call in flight has ended or been withdrawn."""

    def __init__(self, home: int, handed_over: Callable[[int], None]) -> None:
        self.home = home
        self.handed_over = handed_over
        self.in_flight = 0
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # A daemon, as aiosqlite's: a program that forgets close() still exits (SQLite's journal
        # keeps the file whole; what was not committed is lost, as with any crash).
        self._thread = threading.Thread(target=self._work, name="uow-async-session", daemon=True)
        self._thread.start()
        self.thread = self._thread.ident or 0

    def submit(self, function: Callable[[], R]) -> "concurrent.futures.Future[R]":
        """Queue ``function``; the future holds what it returns or raises."""
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        with self._lock:
            self.in_flight += 1
            self.handed_over(self.thread)
        self._jobs.put((future, function))
        return future

    async def run(self, function: Callable[[], R], *, cleanup: bool = False) -> R:
        """Run ``function`` on the worker and await it without blocking the loop (cancellation: see
        the module docstring)."""
        future = self.submit(function)
        waiter = asyncio.wrap_future(future)
        try:
            return await asyncio.shield(waiter)  # a cancellation of the task is decided here, not by asyncio
        except asyncio.CancelledError:
            if not cleanup and future.cancel():  # still queued: withdrawn, so it will never run
                self._settle()
                raise
            await _finished(waiter)  # running (or a cleanup): it ends first, then the cancellation goes on
            raise

    def stop(self) -> None:
        """End the thread once the calls queued before this have run."""
        self._jobs.put(None)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, function = job
            if not future.set_running_or_notify_cancel():  # withdrawn while queued (and settled then)
                continue
            try:
                result = function()
            except BaseException as error:
                self._settle()  # handed back before the awaiting task learns that the call ended
                future.set_exception(error)
            else:
                self._settle()
                future.set_result(result)

    def _settle(self) -> None:
        with self._lock:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.handed_over(self.home)


async def _finished(waiter: "asyncio.Future[Any]") -> None:
    """Wait for a running call to end, whatever it returns or raises, however often the task is cancelled."""
    while not waiter.done():
        try:
            await asyncio.shield(waiter)
        except asyncio.CancelledError:
            continue
        except BaseException:
            break
    if not waiter.cancelled():
        waiter.exception()  # retrieved, so asyncio does not report it as never retrieved
