"""Training batches without per-sample Python: the split on the device, pinned, or streamed.

A batch is a function of ``(seed, step)`` alone (:func:`draw_plan`): which tiles, where each crop
sits on the source grid, and which of the 8 rotations/flips it gets. Every tier assembles a plan by
the same tensor indexing (:func:`assemble`), so one seed gives the same batches whichever tier
serves them, and a resumed run draws the batches an uninterrupted one would, whatever was
prefetched before the interruption.

Tiers, tried in this order by ``loader.tier = "auto"``:

- ``device``: the split is loaded once into the training device's memory (host memory on a CPU)
  and each batch is gathered there.
- ``pinned``: the split stays in page-locked host memory; a background thread gathers the next
  batches and the copies to the GPU overlap the training step. Only differs from ``device`` on
  CUDA.
- ``stream``: worker processes read each batch's tiles from the prepared HDF5 file.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from gsr_bench import distributed
from gsr_bench.data.source import source_mask
from gsr_bench.errors import GsrBenchError
from gsr_bench.protocol import TIERS

if TYPE_CHECKING:
    from gsr_bench.data.tiles import TileArrays, TileSet
    from gsr_bench.protocol import Loader, Train

log = logging.getLogger(__name__)

Plan = dict[str, torch.Tensor]  # tiles [B], offset [B, 2] (pixels), variant [B] (0-7)


def step_seed(seed: int, step: int) -> int:
    """A generator seed for one step: unrelated streams for neighbouring steps and seeds."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{step}".encode()).digest()[:8], "little") >> 1


def draw_plan(
    seed: int, step: int, n_tiles: int, batch: int, patch: int, crop: int, scale: int, augment: bool
) -> Plan:
    """What step ``step`` trains on: tiles, crop corners aligned to the source grid, variants."""
    gen = torch.Generator().manual_seed(step_seed(seed, step))
    cells = (crop - patch) // scale + 1
    tiles = torch.randint(n_tiles, (batch,), generator=gen)
    offset = torch.randint(cells, (batch, 2), generator=gen) * scale
    variant = torch.randint(8, (batch,), generator=gen) if augment else torch.zeros(batch, dtype=torch.long)
    return {"tiles": tiles, "offset": offset, "variant": variant}


@functools.lru_cache(maxsize=16)
def _grids(size: int, device: torch.device) -> torch.Tensor:
    """``[8, 2, size, size]``: for each variant, the (row, column) each output pixel comes from.

    Variant ``v`` is ``torch.rot90(k=v // 2)`` then, if ``v`` is odd, a flip of the last axis;
    the maps are made by applying exactly those operations to the coordinates.
    """
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    coords = torch.stack([rows, cols])
    maps = []
    for v in range(8):
        m = torch.rot90(coords, v // 2, dims=(-2, -1))
        maps.append(torch.flip(m, dims=(-1,)) if v % 2 else m)
    return torch.stack(maps).to(device)


def _gather(
    x: torch.Tensor, tiles: torch.Tensor, corner: torch.Tensor, variant: torch.Tensor, size: int
) -> torch.Tensor:
    grid = _grids(size, x.device)[variant]  # [B, 2, S, S]
    rows = grid[:, 0] + corner[:, 0, None, None]
    cols = grid[:, 1] + corner[:, 1, None, None]
    # advanced indices around a slice put the batch dimensions first: [B, S, S, C]
    return x[tiles[:, None, None], :, rows, cols].permute(0, 3, 1, 2)


def assemble(arrays: TileArrays, plan: Plan, patch: int, scale: int) -> dict[str, torch.Tensor]:
    """The batch of ``plan`` from ``arrays`` (plan tile numbers index ``arrays``), on their device.

    The guide comes out z-scored, no observation as 0, with the source mask appended
    (:func:`~gsr_bench.data.source.source_mask`); every tensor is contiguous.
    """
    device = arrays.target.device
    tiles = plan["tiles"].to(device, non_blocking=True)
    offset = plan["offset"].to(device, non_blocking=True)
    variant = plan["variant"].to(device, non_blocking=True)
    raw = _gather(arrays.guide, tiles, offset, variant, patch)
    source_valid = _gather(arrays.source_valid, tiles, offset // scale, variant, patch // scale).contiguous()
    # one copy of the guide: z-scored in place inside the batch that also holds the mask channel
    b, c = raw.shape[:2]
    guide = torch.empty((b, c + 1, patch, patch), dtype=torch.float32, device=device)
    images = guide[:, :c]
    images.copy_(raw).sub_(arrays.mean[:, None, None]).div_(arrays.std[:, None, None]).nan_to_num_(0.0)
    guide[:, c:] = source_mask(source_valid, scale)
    return {
        "guide": guide,
        "target": _gather(arrays.target, tiles, offset, variant, patch).contiguous(),
        "valid": _gather(arrays.valid, tiles, offset, variant, patch).contiguous(),
        "source": _gather(arrays.source, tiles, offset // scale, variant, patch // scale).contiguous(),
        "source_valid": source_valid,
    }


def available_bytes(device: torch.device) -> int:
    """Free memory of ``device`` (for a CPU, the host's available memory)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return host_available_bytes()


def host_available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def choose_tier(requested: str, split_bytes: int, device: torch.device, fraction: float) -> str:
    """The tier that serves a split of ``split_bytes``; a fallback is said in one log line."""
    if requested not in TIERS:
        raise GsrBenchError(f"unknown loader.tier {requested!r}; known: {', '.join(TIERS)}")
    if requested != "auto":
        return requested
    gb = split_bytes / 1e9
    room = fraction * available_bytes(device)
    if split_bytes <= room:
        return "device"
    where = f"{fraction:g} of the free memory of {device} ({room / 1e9:.1f} GB)"
    if device.type == "cuda":
        host = fraction * host_available_bytes()
        if split_bytes <= host:
            log.warning(
                "train split (%.1f GB) does not fit in %s: serving it from pinned host memory", gb, where
            )
            return "pinned"
        where += f" nor in host memory ({host / 1e9:.1f} GB)"
    log.warning("train split (%.1f GB) does not fit in %s: streaming it from the prepared file", gb, where)
    return "stream"


@dataclass
class _Spec:
    seed: int
    n_tiles: int
    batch: int
    patch: int
    crop: int
    scale: int
    augment: bool

    def plan(self, step: int) -> Plan:
        plan = draw_plan(
            self.seed, step, self.n_tiles, self.batch, self.patch, self.crop, self.scale, self.augment
        )
        return distributed.shard(plan)  # DDP: every rank draws the whole plan and keeps its share


class _StreamSteps(torch.utils.data.Dataset):
    """Item ``step``: the batch of that step read from the prepared file (in a worker process)."""

    def __init__(self, tiles: TileSet, spec: _Spec) -> None:
        self.tiles, self.spec = tiles, spec

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        plan = self.spec.plan(step)
        unique, local = torch.unique(plan["tiles"], return_inverse=True)
        arrays = self.tiles.read_arrays(unique.tolist())
        return assemble(arrays, {**plan, "tiles": local}, self.spec.patch, self.spec.scale)


class BatchSampler:
    """Training batches for steps ``start .. stop - 1`` on ``device``, from one tier.

    ``wait_s`` accumulates the time the training loop spent blocked waiting for a batch.
    """

    def __init__(
        self,
        tiles: TileSet,
        train: Train,
        loader: Loader,
        seed: int,
        device: torch.device,
        progress: bool = False,
    ) -> None:
        self.tiles, self.loader, self.device, self.progress = tiles, loader, device, progress
        self.spec = _Spec(
            seed, len(tiles), train.batch_size, train.patch_size, tiles.crop, tiles.info.scale, train.augment
        )
        self.tier = choose_tier(loader.tier, tiles.nbytes(), device, loader.memory_fraction)
        self.wait_s = 0.0  # the one-time load of a resident split is not counted: ``load_s``
        self.load_s = 0.0

    def _resident(self) -> TileArrays:
        """The whole split on the device (``device`` tier) or in pinned host memory, loaded once
        per tile set: the jobs of one run that share it load it once."""
        where = self.device if self.tier == "device" else torch.device("cpu")
        pin = self.tier == "pinned" and self.device.type == "cuda"
        return self.tiles.resident(where, pin, self.progress)

    def batches(self, start: int, stop: int) -> Iterator[dict[str, torch.Tensor]]:
        if self.tier in ("device", "pinned"):
            t0 = time.perf_counter()
            self._resident()
            self.load_s += time.perf_counter() - t0
        if self.tier == "device":
            source: Iterator[dict[str, torch.Tensor]] = (
                assemble(self._resident(), self._device_plan(s), self.spec.patch, self.spec.scale)
                for s in range(start, stop)
            )
        elif self.tier == "pinned":
            source = self._threaded(start, stop)
        else:
            source = self._streamed(start, stop)
        while True:
            t0 = time.perf_counter()
            batch = next(source, None)
            if batch is None:
                return
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            self.wait_s += time.perf_counter() - t0
            yield batch

    def _device_plan(self, step: int) -> Plan:
        plan = self.spec.plan(step)
        if self.device.type == "cuda":  # a copy from pageable memory would wait for the GPU
            plan = {k: v.pin_memory() for k, v in plan.items()}
        return plan

    def _threaded(self, start: int, stop: int) -> Iterator[dict[str, torch.Tensor]]:
        arrays = self._resident()
        pin = self.device.type == "cuda"
        ready: queue.Queue[Any] = queue.Queue(maxsize=max(1, self.loader.prefetch))
        stop_event = threading.Event()

        def work() -> None:
            try:
                for s in range(start, stop):
                    batch = assemble(arrays, self.spec.plan(s), self.spec.patch, self.spec.scale)
                    if pin:
                        batch = {k: v.pin_memory() for k, v in batch.items()}
                    while not stop_event.is_set():
                        try:
                            ready.put(batch, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop_event.is_set():
                        return
                ready.put(None)
            except BaseException as exc:  # handed to the training loop, which raises it
                ready.put(exc)

        thread = threading.Thread(target=work, name="gsr-bench-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = ready.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop_event.set()
            thread.join(timeout=5)

    def _streamed(self, start: int, stop: int) -> Iterator[dict[str, torch.Tensor]]:
        workers = max(0, self.loader.workers)
        loader = torch.utils.data.DataLoader(
            _StreamSteps(self.tiles, self.spec),
            batch_size=None,
            sampler=range(start, stop),
            num_workers=workers,
            prefetch_factor=max(1, self.loader.prefetch // max(workers, 1)) if workers else None,
            pin_memory=self.device.type == "cuda",
        )
        yield from loader
