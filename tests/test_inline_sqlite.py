"""The inline SQLite driver's thread hops: a cancelled caller still waits for the thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ems_connector.persistence.inline_sqlite import finish_in_thread


async def test_a_cancelled_caller_resumes_only_after_the_thread_returned() -> None:
    release = threading.Event()
    returned = threading.Event()

    def slow() -> str:
        release.wait(5)
        returned.set()
        return "done"

    task = asyncio.create_task(finish_in_thread(slow))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.sleep(0.05)
    task.cancel()  # a second cancellation does not cut the wait short either
    await asyncio.sleep(0.05)
    assert not task.done()  # still waiting for the thread, which is still inside `slow`
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert returned.is_set()


async def test_the_result_and_errors_of_the_thread_come_back() -> None:
    assert await finish_in_thread(lambda: 42) == 42

    def fails() -> None:
        raise ValueError("from the thread")

    with pytest.raises(ValueError, match="from the thread"):
        await finish_in_thread(fails)
