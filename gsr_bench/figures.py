"""Leaderboard figures: qualitative tiles, error by target bin, RMSE against throughput."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gsr_bench.metrics import bin_label, bin_lower_bound


@dataclass(frozen=True)
class Names:
    """How a dataset names its target and source in figures (from its runs' tags)."""

    units: str = ""
    label: str = "target"
    source_name: str = "source"

    @classmethod
    def of(cls, part: pd.DataFrame) -> Names:
        first = part.iloc[0]
        return cls(
            str(first.get("units", "")),
            str(first.get("label", "target")),
            str(first.get("source_name", "source")),
        )

    def unit(self, name: str) -> str:
        """``"RMSE (Mg/ha)"``; just the name for a unitless target."""
        return f"{name} ({self.units})" if self.units else name


def _rgb(rgb: np.ndarray) -> np.ndarray:
    """The z-scored red/green/blue guide channels as a displayable image (2-98 % stretch each)."""
    img = np.moveaxis(rgb.astype(np.float32), 0, -1)
    if np.isnan(img).all():
        return np.zeros_like(img)
    lo, hi = np.nanpercentile(img, 2, axis=(0, 1)), np.nanpercentile(img, 98, axis=(0, 1))
    return np.nan_to_num(np.clip((img - lo) / np.maximum(hi - lo, 1e-6), 0, 1))  # no data: black


def tile_error(pred: np.ndarray, target: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, float]:
    """The error map (NaN, drawn blank, where the label is invalid) and the RMSE of valid pixels,
    as the metrics count them."""
    err = np.where(valid, pred - target, np.nan)
    rmse = float(np.sqrt(np.nanmean(err**2))) if valid.any() else float("nan")
    return err, rmse


def _block_any(mask: np.ndarray, scale: int) -> np.ndarray:
    h, w = mask.shape[0] // scale, mask.shape[1] // scale
    return np.asarray(mask[: h * scale, : w * scale].reshape(h, scale, w, scale).any(axis=(1, 3)))


def qualitative(
    tiles: dict[str, dict[str, Any]], path: Path, title: str, tile: int = 0, names: Names | None = None
) -> None:
    """Top: guide RGB, source, each method's prediction. Bottom: target, each method's error."""
    if not tiles:
        return
    names = names or Names()
    ref = next(iter(tiles.values()))
    valid = ref["valid"][tile, 0].astype(bool)
    # invalid labels and the source blocks without one are drawn blank, never as a dark "0"
    target = np.where(valid, ref["target"][tile, 0], np.nan)
    source = np.where(
        _block_any(valid, valid.shape[0] // ref["source"].shape[-2]), ref["source"][tile, 0], np.nan
    )
    vmax = float(np.nanpercentile(target, 99.5)) if valid.any() else 1.0
    vmax = vmax or 1.0
    n = len(tiles)
    fig, axes = plt.subplots(2, n + 2, figsize=(2.3 * (n + 2), 5.0), squeeze=False)
    axes[0, 0].imshow(_rgb(ref["rgb"][tile]))
    axes[0, 0].set_title("guide (RGB)", fontsize=8)
    axes[0, 1].imshow(source, cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
    axes[0, 1].set_title(names.source_name, fontsize=8)
    axes[1, 0].imshow(target, cmap="viridis", vmin=0, vmax=vmax)
    axes[1, 0].set_title(f"target ({names.label})", fontsize=8)
    axes[1, 1].axis("off")
    im_err = im_val = None
    for k, (method, data) in enumerate(tiles.items(), start=2):
        pred = data["pred"][tile, 0]
        im_val = axes[0, k].imshow(pred, cmap="viridis", vmin=0, vmax=vmax)
        axes[0, k].set_title(method, fontsize=8)
        err, rmse = tile_error(pred, target, data["valid"][tile, 0])
        im_err = axes[1, k].imshow(err, cmap="RdBu_r", vmin=-vmax / 2, vmax=vmax / 2)
        axes[1, k].set_title(f"error, RMSE {rmse:.1f}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if im_val is not None and im_err is not None:
        fig.colorbar(im_val, ax=axes[0, :].tolist(), shrink=0.8, label=names.unit(names.label))
        fig.colorbar(im_err, ax=axes[1, :].tolist(), shrink=0.8, label=names.unit("error"))
    fig.suptitle(f"{title} · tile {ref['ids'][tile]}", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _bins(table: pd.DataFrame) -> list[str]:
    return [
        c.removeprefix("rmse_bin_").removesuffix("_mean")
        for c in table.columns
        if c.startswith("rmse_bin_") and c.endswith("_mean")
    ]


FAMILY_STYLES = {"gsr": ("-", "o"), "sr": ("--", "s"), "regression": (":", "^")}


def error_by_bin(table: pd.DataFrame, path: Path, names: Names | None = None) -> None:
    """RMSE and mean signed error (bias) per target bin, one line per method, styled by family."""
    names = names or Names()
    order = sorted(_bins(table), key=bin_lower_bound)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(order))
    for _, r in table.iterrows():
        # the family in the line style: where regression saturates shows as dotted lines diving
        style = FAMILY_STYLES.get(str(r.get("family", "")), ("-", "o"))
        kw = {"linestyle": style[0], "marker": style[1], "label": f"{r['method']} ({r.get('family', '')})"}
        ax1.plot(x, [r[f"rmse_bin_{b}_mean"] for b in order], **kw)
        ax2.plot(x, [r[f"bias_bin_{b}_mean"] for b in order], **kw)
    labels = [bin_label(b) for b in order]
    for ax, name in ((ax1, names.unit("RMSE")), (ax2, names.unit("bias, prediction − target"))):
        ax.set_xticks(x, labels)
        ax.set_xlabel(names.unit(f"target {names.label} bin"))
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    ax2.axhline(0, color="k", lw=0.8)
    ax2.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def speed(table: pd.DataFrame, path: Path, names: Names | None = None) -> None:
    """RMSE against inference throughput (log scale)."""
    names = names or Names()
    fig, ax = plt.subplots(figsize=(6, 4))
    for _, r in table.iterrows():
        ax.errorbar(
            r["throughput_mpix_s_mean"],
            r["rmse_mean"],
            yerr=r.get("rmse_std", 0) or 0,
            fmt="o",
            capsize=3,
        )
        ax.annotate(
            r["method"],
            (r["throughput_mpix_s_mean"], r["rmse_mean"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_xlabel("inference throughput (Mpix/s, log)")
    ax.set_ylabel(names.unit("RMSE"))
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_quicklook(
    path: Path, scene: Any, output: Path, rgb: tuple[int, int, int], units: str = "", size: int = 800
) -> Path:
    """Source, guide RGB and output of ``gsr-bench predict`` side by side, each decimated to
    about ``size`` pixels (nearest), the two maps on one colour scale."""
    import rasterio

    guide = scene.read_overview(size)
    h, w = guide.shape[1:]
    with rasterio.open(output) as src:
        out = src.read(1, out_shape=(h, w), masked=True).astype(np.float32).filled(np.nan)
    s = scene.source_array
    source = np.repeat(np.repeat(s, -(-h // s.shape[0]), 0), -(-w // s.shape[1]), 1)[:h, :w]
    finite = np.concatenate([source[np.isfinite(source)], out[np.isfinite(out)]])
    vmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), constrained_layout=True)
    axes[0].imshow(source, cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
    axes[0].set_title(f"source ({scene.source.name})")
    axes[1].imshow(_rgb(guide[list(rgb)]), interpolation="nearest")
    axes[1].set_title("guide (RGB)")
    image = axes[2].imshow(out, cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
    axes[2].set_title(f"output ({output.name})")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=axes, shrink=0.8, label=units)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
