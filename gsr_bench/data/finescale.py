"""What happens inside a source cell: the part of the target a guided method has to recover.

Two figures per tile, on valid pixels, with ``up(block_mean(x))`` the block mean copied back to
every pixel of its ``scale x scale`` block:

* **within-block share**: ``var(T - up(block_mean(T))) / var(T)``, the part of the target's
  variance that the coarse source cannot hold;
* **within-block guide R²**: the R² of a linear least-squares fit (all guide channels and an
  intercept) of ``T - up(block_mean(T))`` on ``G - up(block_mean(G))``, how much of that part a
  guide's own fine detail explains linearly.

A tile gets ``nan`` and a reason where a figure is undefined: too few valid pixels, no variance
in the target, or a guide constant inside every block.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIN_VALID = 0.9  # tiles with fewer valid pixels are left out, as in the real-data measurement


@dataclass(frozen=True)
class FineScale:
    tile_id: str
    share: float
    r2: float
    reason: str = ""  # why a figure is nan

    def __str__(self) -> str:
        if self.reason:
            return f"{self.tile_id}: share {self.share:.3f}, guide R² {self.r2:.3f} ({self.reason})"
        return f"{self.tile_id}: share {self.share:.3f}, guide R² {self.r2:.3f}"


def _within(x: np.ndarray, valid: np.ndarray, scale: int) -> np.ndarray:
    """``x - up(block_mean(x))`` over valid pixels of ``x[..., H, W]`` (0 elsewhere)."""
    *lead, h, w = x.shape
    hb, wb = h // scale, w // scale
    x = x[..., : hb * scale, : wb * scale]
    v = valid[: hb * scale, : wb * scale]
    blocks = np.where(v, x, 0).reshape(*lead, hb, scale, wb, scale)
    count = v.reshape(hb, scale, wb, scale).sum(axis=(1, 3))
    mean = blocks.sum(axis=(-3, -1)) / np.maximum(count, 1)
    up = np.repeat(np.repeat(mean, scale, axis=-2), scale, axis=-1)
    return np.where(v, x - up, 0.0)


def fine_scale(
    tile_id: str, guide: np.ndarray, target: np.ndarray, valid: np.ndarray, scale: int
) -> FineScale:
    """Both figures of one tile: ``guide`` ``[C, H, W]`` (NaN: not observed), ``target`` and
    ``valid`` ``[H, W]``."""
    shape: tuple[int, int] = (int(target.shape[-2]), int(target.shape[-1]))
    target = np.asarray(target, np.float64).reshape(shape)
    valid = np.asarray(valid, bool).reshape(shape) & np.isfinite(target)
    guide = np.asarray(guide, np.float64)
    valid &= np.isfinite(guide).all(axis=0)
    share_valid = float(valid.mean())
    if share_valid < MIN_VALID:
        return FineScale(tile_id, np.nan, np.nan, f"{share_valid:.0%} valid pixels, under {MIN_VALID:.0%}")
    h, w = shape
    valid = valid[: h - h % scale, : w - w % scale]
    t = target[: valid.shape[0], : valid.shape[1]]
    total = t[valid].var()
    if total <= 0:
        return FineScale(tile_id, np.nan, np.nan, "the target is constant")
    dt = _within(t, valid, scale)[valid]
    share = float(dt.var() / total)
    if dt.var() <= 0:
        return FineScale(tile_id, share, np.nan, "the target is constant inside every block")
    g = np.nan_to_num(guide[:, : valid.shape[0], : valid.shape[1]])
    dg = _within(g, valid, scale)[:, valid].T
    keep = dg.std(axis=0) > 1e-9 * (np.abs(g).max() + 1)
    if not keep.any():
        return FineScale(tile_id, share, np.nan, "the guide is constant inside every block")
    x = np.column_stack([dg[:, keep], np.ones(len(dt))])
    coef, *_ = np.linalg.lstsq(x, dt, rcond=None)
    residual = dt - x @ coef
    r2 = float(1 - (residual**2).sum() / ((dt - dt.mean()) ** 2).sum())
    return FineScale(tile_id, share, r2)


def summarize(found: list[FineScale]) -> dict[str, float]:
    """Mean, min and max of both figures over the tiles where they are defined."""
    out: dict[str, float] = {}
    for name in ("share", "r2"):
        values = np.array([getattr(f, name) for f in found], float)
        values = values[np.isfinite(values)]
        label = "within_block_share" if name == "share" else "within_block_guide_r2"
        out[f"{label}_mean"] = float(values.mean()) if values.size else float("nan")
        out[f"{label}_min"] = float(values.min()) if values.size else float("nan")
        out[f"{label}_max"] = float(values.max()) if values.size else float("nan")
        out[f"{label}_tiles"] = float(values.size)
    return out


def prepared_fine_scale(path: str | Path, scale: int | None = None) -> list[FineScale]:
    """Both figures for every tile of a prepared HDF5 split (the guide as stored, raw)."""
    import h5py

    with h5py.File(path, "r") as f:
        scale = int(scale or f.attrs["scale"])
        ids = [x.decode() for x in f["chip_id"][:]]
        return [
            fine_scale(ids[i], f["guide"][i].astype(np.float32), f["target"][i, 0], f["valid"][i, 0], scale)
            for i in range(len(ids))
        ]
