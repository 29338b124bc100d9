"""Write a small generated folder for this plugin: canopy heights in metres at x8, seen by a
3-channel RGB guide (``python -m gsr_bench_raster_folder.fake OUT``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from gsr_bench.api import write_tiff

METADATA = """scale = 8
units = "m"
label = "canopy height"
data_range = 40.0
bins = [5.0, 15.0, 25.0]
channels = ["red", "green", "blue"]
rgb = ["red", "green", "blue"]
nodata = -9999.0
"""


def heights(rng: np.random.Generator, size: int) -> np.ndarray:
    """Stands of smooth height with clearings: 0-35 m."""
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), 6)
    field = (field - field.mean()) / field.std()
    crowns = ndimage.gaussian_filter(rng.standard_normal((size, size)), 1.2)
    h = np.clip(18 + 9 * field + 12 * crowns, 0, 35)
    h[field < -0.8] = 0.0  # clearings
    return h.astype(np.float32)


def rgb(rng: np.random.Generator, h: np.ndarray) -> np.ndarray:
    """Taller canopy is darker and greener; bare ground is bright and brown."""
    cover = np.clip(h / 20, 0, 1)
    shade = ndimage.gaussian_filter(h, 1.0) - h  # crowns lit, gaps in shadow
    r = 0.45 - 0.30 * cover + 0.01 * shade
    g = 0.40 - 0.15 * cover + 0.01 * shade
    b = 0.30 - 0.20 * cover + 0.005 * shade
    image = np.stack([r, g, b]) + 0.02 * rng.standard_normal((3, *h.shape))
    return np.clip(image, 0, 1).astype(np.float32)


def make(out: Path, train: int = 3, test: int = 1, size: int = 192, seed: int = 0) -> Path:
    """``train`` and ``test`` raster pairs of ``size`` pixels; a few target pixels are nodata."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataset.toml").write_text(METADATA)
    for split, count in (("train", train), ("test", test)):
        (out / split).mkdir(exist_ok=True)
        for i in range(count):
            h = heights(rng, size)
            image = rgb(rng, h)
            h[rng.random(h.shape) < 0.01] = -9999.0  # unlabelled pixels
            write_tiff(out / split / f"area{i}_guide.tif", image)
            write_tiff(out / split / f"area{i}_target.tif", h)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=3)
    parser.add_argument("--test", type=int, default=1)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(make(args.out, args.train, args.test, args.size, args.seed))


if __name__ == "__main__":
    main()
