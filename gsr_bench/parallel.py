"""An ordered process-pool map shared by the data commands."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def ordered_map(fn: Callable[[T], R], items: list[T], workers: int) -> Iterator[R]:
    """``map`` in worker processes when ``workers > 1``, results in input order."""
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    # spawn: forking a parent that already runs torch's thread pools can deadlock
    with ProcessPoolExecutor(min(workers, len(items)), mp_context=get_context("spawn")) as pool:
        try:
            chunk = max(1, min(8, len(items) // (4 * workers)))
            yield from pool.map(fn, items, chunksize=chunk)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


class Partial:
    """A picklable ``functools.partial`` that puts the mapped item at ``position``."""

    def __init__(self, fn: Callable[..., Any], *args: Any, position: int = 0) -> None:
        self.fn, self.args, self.position = fn, args, position

    def __call__(self, item: Any) -> Any:
        args = list(self.args)
        args.insert(self.position, item)
        return self.fn(*args)
