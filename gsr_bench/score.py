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
from gsr_bench.jobs import Job, cache_dir, load_splits
from gsr_bench.metrics import METRICS_REVISION, MetricAccumulator, definition_changed, is_accumulated
from gsr_bench.ops import project_to_source
from gsr_bench.tracking import Tracker


def rescore(
    pred: np.ndarray, ids: Sequence[str], tiles: TileSet, bins: Any, extra: dict[str, Any], project: bool
) -> tuple[dict[str, float], bool]:
    """The evaluation metrics of saved predictions ``pred`` ``[N, 1, H, W]`` on ``tiles``, and
    whether any target pixel of them is masked."""
    if list(ids) != tiles.ids():
        raise GsrBenchError(
            f"saved predictions are for other tiles ({len(ids)} tiles, first {list(ids[:2])}) than the "
            f"test set ({len(tiles)}, first {tiles.ids()[:2]}): the data changed since the run"
        )
    info = tiles.info
    acc = MetricAccumulator(info.data_range, info.scale, bins, extra)
    projected = MetricAccumulator(info.data_range, info.scale, bins, extra)
    masked = False
    for start in range(0, len(tiles), 8):
        b = tiles.batch(range(start, min(start + 8, len(tiles))))
        masked = masked or not bool(b["valid"].all())
        p = torch.from_numpy(pred[start : start + len(b["id"])].astype(np.float32))
        acc.update(p, b["target"], b["valid"], b["source"])
        if project:
            projected.update(
                project_to_source(p, b["source"], info.scale), b["target"], b["valid"], b["source"]
            )
    metrics = acc.compute()
    if project:
        metrics.update({f"projected_{k}": v for k, v in projected.compute().items()})
    return metrics, masked


def replaced(
    new: dict[str, float],
    old: dict[str, float],
    tags: dict[str, str],
    masked: bool,
    versions: dict[str, str],
) -> dict[str, float]:
    """The recomputed values that replace a run's stored ones.

    Stored values came from the float32 predictions; the saved ones are float16, which moves an
    exact result (nearest's consistency 0) by up to 1/2048 of its values. So a stored value stays
    unless its definition changed since the run's ``metrics_revision`` (``metrics.REVISIONS``;
    a change under masks only counts on a test split with masked pixels), its extra metric's
    version changed, or the run lacks it."""
    revision = int(tags.get("metrics_revision", "1"))
    logged_versions = json.loads(tags.get("metric_versions", "{}"))
    out = {}
    for name, value in new.items():
        base = name.removeprefix("projected_")
        if base in versions:
            changed = logged_versions.get(base) != versions[base]
        else:
            changed = definition_changed(name, revision, masked)
        if changed or name not in old:
            out[name] = value
    return out


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
    from gsr_bench.execute import extra_metrics

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
        computed, masked = rescore(
            pred, ids, splits.test, splits.test.info.bins, extra, job.protocol.eval.project_to_source
        )
        old = dict(run.data.metrics)
        versions = {name: str(info["version"]) for name, info in extra_info.items()}
        new = replaced(computed, old, dict(run.data.tags), masked, versions)
        for name in sorted(computed):
            before = old.get(name)
            diff = "" if before is None else f"{computed[name] - before:+.4g}"
            now = f"{computed[name]:.4g}" + ("" if name in new else " (kept)")
            rows.append([job.name, name, "" if before is None else f"{before:.4g}", now, diff])
        if write:
            tags = {
                "rescored_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "metrics_revision": str(METRICS_REVISION),
                "metric_versions": json.dumps(versions, sort_keys=True),
            }
            tracker.log(run.info.run_id, {}, new, tags)
            if records is not None:
                stale = {k for k in old if is_accumulated(k) and k not in computed}  # renamed bins
                _update_records(records, job.key, new, computed, stale, extra_info)
    return rows


def _update_records(
    root: Path,
    job_key: str,
    new: dict[str, float],
    computed: dict[str, float],
    stale: set[str],
    extra_info: dict[str, Any],
) -> None:
    """Write the ``new`` values into a job's record, and the ``computed`` ones it lacks; drop
    the ``stale`` ones (a bin the definitions no longer name); record the definitions' revision."""
    for path in Path(root).rglob(f"*-{job_key}.json"):
        record = json.loads(path.read_text())
        kept = {k: v for k, v in record["metrics"].items() if k not in stale}
        record["metrics"] = dict(sorted({**computed, **kept, **new}.items()))
        record["metrics_revision"] = METRICS_REVISION
        if extra_info:
            record["metric_info"] = extra_info
        path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
