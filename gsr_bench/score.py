"""``gsr-bench score``: metrics recomputed from a finished job's saved test predictions.

A job saves every test prediction (float16) as its ``predictions.npz`` artifact, so a metric
that is added or fixed later reaches old results without running any method again. float16
rounds a prediction by at most 1/2048 of its value (0.25 Mg/ha at 500), which moves pooled
metrics by far less than their seed-to-seed spread.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gsr_bench.data.tiles import TileSet
from gsr_bench.errors import GsrBenchError
from gsr_bench.metrics import MetricAccumulator
from gsr_bench.ops import project_to_source
from gsr_bench.runner import Job, cache_dir, load_splits
from gsr_bench.tracking import Tracker


def rescore(
    pred: np.ndarray, ids: Sequence[str], tiles: TileSet, bins: Any, extra: dict[str, Any], project: bool
) -> dict[str, float]:
    """The evaluation metrics of saved predictions ``pred`` ``[N, 1, H, W]`` on ``tiles``."""
    if list(ids) != tiles.ids():
        raise GsrBenchError(
            f"saved predictions are for other tiles ({len(ids)} tiles, first {list(ids[:2])}) than the "
            f"test set ({len(tiles)}, first {tiles.ids()[:2]}): the data changed since the run"
        )
    info = tiles.info
    acc = MetricAccumulator(info.data_range, info.scale, bins, extra)
    projected = MetricAccumulator(info.data_range, info.scale, bins, extra)
    for start in range(0, len(tiles), 8):
        b = tiles.batch(range(start, min(start + 8, len(tiles))))
        p = torch.from_numpy(pred[start : start + len(b["id"])].astype(np.float32))
        acc.update(p, b["target"], b["valid"], b["source"])
        if project:
            projected.update(
                project_to_source(p, b["source"], info.scale), b["target"], b["valid"], b["source"]
            )
    metrics = acc.compute()
    if project:
        metrics.update({f"projected_{k}": v for k, v in projected.compute().items()})
    return metrics


def _evaluated(name: str) -> bool:
    """Whether ``MetricAccumulator`` computes a metric of this name (also under ``projected_``)."""
    base = name.removeprefix("projected_")
    return base in EVALUATED or base.startswith(("rmse_bin_", "bias_bin_", "pixels_bin_"))


EVALUATED = {"mae", "rmse", "rmse_tile", "psnr", "psnr_tile", "ssim", "bias", "r2", "consistency_rmse"}
EVALUATED |= {"tiles_scored", "tiles_empty"}


def score_jobs(
    tracker: Tracker,
    jobs: Sequence[Job],
    results_dir: Path,
    write: bool = True,
    progress: bool = True,
    records: Path | None = None,
) -> list[list[str]]:
    """Rescore every finished job of ``jobs``; log the new metrics to its run (and its result
    record under ``records``) unless ``write`` is False. Rows: job, metric, logged, new, difference."""
    from gsr_bench.evaluate import extra_metrics

    extra, extra_info = extra_metrics()
    rows: list[list[str]] = []
    for job in jobs:
        run = tracker.finished_run(job.key)
        if run is None:
            rows.append([job.name, "-", "not run", "", ""])
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = tracker.download(run.info.run_id, "predictions.npz", Path(tmp))
            if path is None or not path.exists():
                rows.append([job.name, "-", "no predictions.npz (a run from before they were saved)", "", ""])
                continue
            with np.load(path) as saved:
                pred, ids = saved["pred"], [str(x) for x in saved["ids"]]
        splits = load_splits(job, cache_dir(results_dir), progress, workers=None)
        new = rescore(
            pred, ids, splits.test, splits.test.info.bins, extra, job.protocol.eval.project_to_source
        )
        old = run.data.metrics
        for name in sorted(new):
            before = old.get(name)
            diff = "" if before is None else f"{new[name] - before:+.4g}"
            rows.append([job.name, name, "" if before is None else f"{before:.4g}", f"{new[name]:.4g}", diff])
        if write:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            tracker.log(run.info.run_id, {}, new, {"rescored_at": stamp})
            if records is not None:
                _update_records(records, job.key, new, extra_info)
    return rows


def _update_records(root: Path, job_key: str, metrics: dict[str, float], extra_info: dict[str, Any]) -> None:
    """Replace a record's evaluation metrics by ``metrics``: a metric the definitions no longer
    produce (a renamed bin) goes; what evaluation does not compute (time, parameters) stays."""
    for path in Path(root).rglob(f"*-{job_key}.json"):
        record = json.loads(path.read_text())
        extras = set(record.get("metric_info", {}))
        kept = {k: v for k, v in record["metrics"].items() if not _evaluated(k) and k not in extras}
        record["metrics"] = dict(sorted({**kept, **metrics}.items()))
        if extra_info:
            record["metric_info"] = extra_info
        else:
            record.pop("metric_info", None)
        path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
