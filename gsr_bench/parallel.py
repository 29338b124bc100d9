"""An ordered process-pool map shared by the data commands."""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[Executor | None]:
    """One pool of ``workers`` processes for several maps (None: work in this process).

    Spawned, not forked: forking a parent that already runs torch's thread pools can deadlock.
    Each worker pays its imports once, so a command makes one pool, not one per stage.
    """
    if workers <= 1:
        yield None
        return
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        pool.shutdown()


def ordered_map(
    fn: Callable[[T], R], items: list[T], workers: int = 1, pool: Executor | None = None
) -> Iterator[R]:
    """``map`` over ``pool`` (or a pool of ``workers`` made for it), results in input order.

    At most a few items per worker are in flight, so memory stays flat however many items there
    are and however slowly the caller consumes the results.
    """
    if pool is None and (workers <= 1 or len(items) <= 1):
        yield from map(fn, items)
        return
    if pool is None:
        with worker_pool(min(workers, len(items))) as own:
            yield from ordered_map(fn, items, pool=own)
        return
    window = 4 * max(1, getattr(pool, "_max_workers", 1))
    pending: deque[Future[R]] = deque()
    it = iter(items)
    try:
        for item in it:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


class Partial:
    """A picklable ``functools.partial`` that puts the mapped item at ``position``."""

    def __init__(self, fn: Callable[..., Any], *args: Any, position: int = 0) -> None:
        self.fn, self.args, self.position = fn, args, position

    def __call__(self, item: Any) -> Any:
        args = list(self.args)
        args.insert(self.position, item)
        return self.fn(*args)
