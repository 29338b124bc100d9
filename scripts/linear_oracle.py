"""How much a linear use of the guide can gain over bicubic on a prepared dataset: the bicubic
source plus a least-squares map from each pixel's high-passed guide (the part inside a 100 m
cell, as MSG sees it) to the bicubic residual, fitted on the train tiles, scored on the test tiles.

    python scripts/linear_oracle.py [-d biomassters-synthetic] [--protocol quick] [-O k=v] [--root DIR]

Prints RMSE of bicubic, of the linear map on the high-passed guide, and of one that also reads the
guide's raw values; their ratios to bicubic bound what the within-block guide R^2 (issue #12)
leaves to a method that uses the guide linearly, pixel by pixel.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from gsr_bench.jobs import cache_dir, load_splits
from gsr_bench.ops import upsample
from gsr_bench.planning import plan_jobs
from gsr_bench.plugins import get_plugin_manager
from gsr_bench.protocol import load_protocol
from gsr_bench_methods._common import box_blur


def features(batch: dict[str, torch.Tensor], scale: int) -> tuple[torch.Tensor, ...]:
    guide, source = batch["guide"], batch["source"]
    base = upsample(source, scale, "bicubic")
    high = guide - box_blur(guide, scale + 1)
    return base, high, guide


def design(parts: list[torch.Tensor], valid: torch.Tensor) -> np.ndarray:
    cols = [p.permute(0, 2, 3, 1)[valid[:, 0]] for p in parts]
    x = torch.cat([*cols, torch.ones(cols[0].shape[0], 1)], 1)
    return x.double().numpy()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--dataset", default="biomassters-synthetic")
    parser.add_argument("--protocol", default="quick")
    parser.add_argument("--root")
    parser.add_argument("-O", "--dataset-option", action="append", default=[])
    parser.add_argument("--results", default="results")
    parser.add_argument("--pixels", type=int, default=400_000, help="train pixels the fit samples")
    args = parser.parse_args(argv)
    pm = get_plugin_manager()
    job = plan_jobs(
        pm, ["bicubic"], [args.dataset], load_protocol(args.protocol), [0], args.root, args.dataset_option
    )[0]
    splits = load_splits(job, cache_dir(Path(args.results)))
    scale = splits.info.scale
    rng = np.random.default_rng(0)

    def arrays(tiles, with_raw: bool):  # type: ignore[no-untyped-def]
        batch = tiles.batch(range(len(tiles)))
        base, high, guide = features(batch, scale)
        valid = batch["valid"]
        parts = [high, guide] if with_raw else [high]
        target = batch["target"][valid].double().numpy()
        return design(parts, valid), target, base[valid].double().numpy()

    rows = []
    for with_raw in (False, True):
        x, t, b = arrays(splits.train, with_raw)
        pick = rng.choice(len(t), min(args.pixels, len(t)), replace=False)
        beta, *_ = np.linalg.lstsq(x[pick], (t - b)[pick], rcond=None)
        xt, tt, bt = arrays(splits.test, with_raw)
        pred = np.clip(bt + xt @ beta, 0, None)
        rows.append(
            (with_raw, float(np.sqrt(((pred - tt) ** 2).mean())), float(np.sqrt(((bt - tt) ** 2).mean())))
        )
    bicubic = rows[0][2]
    print(
        f"{args.dataset} ({splits.info.revision}), {len(splits.test)} test tiles, RMSE in {splits.info.units}"
    )
    print(f"  bicubic                               {bicubic:7.2f}  1.000")
    for with_raw, rmse, _ in rows:
        label = (
            "bicubic + linear(high-passed and raw guide)"
            if with_raw
            else "bicubic + linear(high-passed guide)"
        )
        print(f"  {label:<44}{rmse:7.2f}  {rmse / bicubic:.3f}")


if __name__ == "__main__":
    main()
