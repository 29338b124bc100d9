"""The leaderboard, built from the result records alone (a row without a record cannot appear).

Per section (a dataset with its options and content, a test set, a protocol and version): one
row per method, mean ± std over seeds, grouped by family as in the GSR4B table and ranked by
RMSE. Written as ``README.md``, ``results.csv``, ``tables/`` (one CSV a section, with its bins),
``index.html`` (static, sortable, no external assets) and ``figures/``.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gsr_bench.metrics import METRICS, TARGET_UNITS, MetricInfo, bin_lower_bound, format_rate
from gsr_bench.record_checks import staleness
from gsr_bench.records import RECORDS_DIR, leaderboard_row, slug, valid_records

if TYPE_CHECKING:
    from gsr_bench.plugins import PluginManager
    from gsr_bench.tracking import Tracker

FAMILY_ORDER = {"gsr": 0, "sr": 1, "regression": 2}
FAMILY_TITLES = {
    "gsr": "Guided super-resolution (guide + source)",
    "sr": "Super-resolution (source only)",
    "regression": "Direct regression (guide only)",
}
COLUMNS = (
    "rmse",
    "mae",
    "rmse_tile",
    "bias",
    "r2",
    "psnr",
    "psnr_tile",
    "ssim",
    "consistency_rmse",
    "throughput_mpix_s",
    "params",
    "train_time_s",
)
KEYS = ("dataset", "protocol", "family", "method")


def collect(records: list[dict[str, Any]], manager: PluginManager | None = None) -> pd.DataFrame:
    """One row per result record that still holds for the installed code: records of another
    method, dataset or protocol version than the installed one, or of other code under the same
    method version, are left out (``gsr-bench leaderboard --check`` names them). A row without a
    record cannot appear."""

    codes: dict[str, str] = {}
    rows = [leaderboard_row(r) for r in records if not staleness(r, manager, codes)]
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    # two sections that would read alike (another content revision) are told apart by their id
    labels = df.groupby("dataset")["section"].transform("nunique")
    df.loc[labels > 1, "dataset"] = df["dataset"] + " #" + df["section"].str[:6]
    df = df.sort_values(["dataset", "protocol", "method", "seed", "job_key"])
    return df.drop_duplicates(["section", "protocol", "method", "seed"], keep="first").reset_index(drop=True)


def extra_metrics(records: list[dict[str, Any]]) -> dict[str, MetricInfo]:
    """The plugins' extra metrics the records hold, with their label, unit and direction."""
    out: dict[str, MetricInfo] = {}
    for record in records:
        for name, info in sorted(record.get("metric_info", {}).items()):
            if name not in METRICS:
                out[name] = MetricInfo(
                    name, info.get("higher_is_better"), info.get("unit", ""), info.get("label") or name
                )
    return out


def aggregate(runs: pd.DataFrame, extras: Sequence[str] = ()) -> pd.DataFrame:
    """Mean and std over seeds per (dataset, protocol, family, method), ranked by RMSE."""
    if runs.empty:
        return pd.DataFrame()
    shown = (*COLUMNS, *extras)
    metric_cols = [c for c in runs.columns if c in shown or c.startswith(("rmse_bin_", "bias_bin_"))]
    g = runs.groupby(list(KEYS))
    out = g[metric_cols].agg(["mean", "std"])
    out.columns = [f"{m}_{s}" for m, s in out.columns]
    out["seeds"] = g["seed"].nunique()
    out["method_version"] = g["method_version"].last()
    out["protocol_version"] = g["protocol_version"].last()
    out["description"] = g["description"].last()
    out["distribution"] = g["distribution"].last()
    for col in ("units", "label", "source_name", "train_dataset", "test_dataset", "test_split"):
        out[col] = g[col].last() if col in runs else ""
    out = out.reset_index()
    out["family_order"] = out["family"].map(FAMILY_ORDER).fillna(9)
    out["rank"] = out.groupby(["dataset", "protocol"])["rmse_mean"].rank(method="min").astype(int)
    out = out.sort_values(["dataset", "protocol", "family_order", "rmse_mean"]).drop(columns="family_order")
    return out.reset_index(drop=True)


def _fmt(mean: float, std: float, metric: str) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    digits = _digits(mean, {"r2": 3, "ssim": 3, "psnr": 2, "psnr_tile": 2}.get(metric, 1))
    if metric == "params":
        return f"{mean / 1e6:.2f} M" if mean >= 1e4 else f"{mean:.0f}"
    if metric == "throughput_mpix_s":
        return format_rate(mean)
    if (
        std is None
        or (isinstance(std, float) and math.isnan(std))
        or metric in ("throughput_mpix_s", "train_time_s")
    ):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _digits(value: float, least: int) -> int:
    """Decimals that show at least three significant digits of ``value`` (a 0.08 px spread of
    a depth dataset must not round away)."""
    if not value or not math.isfinite(value):
        return least
    return max(least, 2 - math.floor(math.log10(abs(value))))


def _label(metric: str, extras: Mapping[str, MetricInfo] | None = None) -> str:
    info = METRICS.get(metric) or (extras or {}).get(metric) or MetricInfo(metric, None, "", metric)
    arrow = "" if info.higher_is_better is None else (" ↑" if info.higher_is_better else " ↓")
    unit = f" ({info.unit})" if info.unit and info.unit not in (TARGET_UNITS, info.label) else ""
    return f"{info.label}{unit}{arrow}"


def _units(part: pd.DataFrame) -> str:
    units, label = str(part["units"].iloc[0] or "the target's units"), str(part["label"].iloc[0])
    return f"{units} ({label})" if label and label != units else units


def _slug(dataset: str, protocol: str) -> str:
    return f"{slug(dataset)}_{slug(protocol)}"


def markdown(table: pd.DataFrame, extras: Mapping[str, MetricInfo] | None = None) -> str:
    lines = [
        "# gsr-bench leaderboard",
        "",
        "Generated by `gsr-bench run --all` (or `gsr-bench leaderboard`) from the result records in "
        "`results/` of the installed method, dataset and protocol versions; do not edit by hand. "
        "Errors in the dataset's units on valid pixels of the test split, mean ± std over seeds "
        "(methods no seed can change run once); ↓ lower is better, ↑ higher is better. Rank is by "
        "RMSE within a section: one dataset with its options and content, one test set, one "
        "protocol version. Per-section CSVs with the error by bin are in `tables/`. Method families "
        "follow the GSR4B table (Karaman et al., ISPRS 2025).",
        "",
    ]
    if table.empty:
        return "\n".join([*lines, "No finished runs yet: `gsr-bench run --all`.", ""])
    for (dataset, protocol), part in table.groupby(["dataset", "protocol"], sort=False):
        slug = _slug(dataset, protocol)
        lines += [f"## {dataset} · protocol `{protocol}` v{part['protocol_version'].iloc[0]}", ""]
        lines += [f"Errors in {_units(part)}.", ""]
        cols = [c for c in (*COLUMNS, *(extras or {})) if f"{c}_mean" in part]
        head = ["rank", "method", "v", "seeds", *[_label(c, extras) for c in cols]]
        for family, fam in part.groupby("family", sort=False):
            lines += [
                f"**{FAMILY_TITLES.get(family, family)}**",
                "",
                "| " + " | ".join(head) + " |",
                "|" + "---|" * len(head),
            ]
            for _, r in fam.iterrows():
                cells = [
                    str(r["rank"]),
                    f"`{r['method']}`",
                    str(r["method_version"]),
                    str(r["seeds"]),
                ]
                cells += [_fmt(r[f"{c}_mean"], r.get(f"{c}_std", float("nan")), c) for c in cols]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        for fig, caption in (
            ("tiles", "Qualitative comparison on test tiles"),
            ("bins", f"RMSE by {part['label'].iloc[0]} bin"),
            ("speed", "RMSE against throughput"),
        ):
            lines += [f"![{caption}](figures/{slug}_{fig}.png)", ""]
    return "\n".join(lines)


def html_page(table: pd.DataFrame, extras: Mapping[str, MetricInfo] | None = None) -> str:
    """``index.html``: one sortable table per section, from ``templates/leaderboard.html``
    (every value escaped)."""
    import jinja2

    sections = []
    groups = table.groupby(["dataset", "protocol"], sort=False) if not table.empty else []
    for (dataset, protocol), part in groups:
        cols = [c for c in (*COLUMNS, *(extras or {})) if f"{c}_mean" in part]
        families = []
        for family, fam in part.groupby("family", sort=False):
            rows = []
            for _, r in fam.iterrows():
                cells = []
                for c in cols:
                    mean = r[f"{c}_mean"]
                    text = _fmt(mean, r.get(f"{c}_std", float("nan")), c)
                    cells.append({"value": "" if pd.isna(mean) else mean, "text": text})
                rows.append(
                    {
                        "rank": r["rank"],
                        "method": r["method"],
                        "title": f"{r['description']} (v{r['method_version']}, {r['distribution']})",
                        "seeds": r["seeds"],
                        "cells": cells,
                    }
                )
            families.append({"name": family, "title": FAMILY_TITLES.get(family, family), "rows": rows})
        sections.append(
            {
                "dataset": dataset,
                "protocol": protocol,
                "version": str(part["protocol_version"].iloc[0]),
                "units": _units(part),
                "labels": [_label(c, extras) for c in cols],
                "families": families,
                "slug": _slug(dataset, protocol),
            }
        )
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gsr_bench", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template("leaderboard.html").render(sections=sections)


def write_leaderboard(
    out_dir: str | Path, manager: PluginManager | None = None, tracker: Tracker | None = None
) -> pd.DataFrame:
    """Regenerate ``out_dir`` from the result records under ``out_dir/results/`` alone (a row
    without a record cannot appear); ``tracker``, when given, lends the test tiles of the
    figures from runs it holds. Returns the aggregated table.

    Each section (a dataset with its options and content, a test set, a protocol) gets its own
    columns, CSV under ``tables/`` and figures; ``results.csv`` holds the columns every section
    has. Regenerating from the same records writes the same bytes."""
    from gsr_bench import figures

    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    records = valid_records(out / RECORDS_DIR)
    runs = collect(records, manager)
    extras = extra_metrics(records)
    table = aggregate(runs, list(extras))
    keep = ["rank", *KEYS, "train_dataset", "test_dataset", "test_split", "method_version"]
    keep += ["protocol_version", "seeds"]
    common = [f"{c}_{s}" for c in (*COLUMNS, *extras) for s in ("mean", "std")]
    if table.empty:
        pd.DataFrame(columns=keep + common).to_csv(out / "results.csv", index=False)
    else:
        _csv(table.reindex(columns=keep + common), out / "results.csv")
    (out / "README.md").write_text(markdown(table, extras))
    (out / "index.html").write_text(html_page(table, extras))
    written: set[str] = set()
    if not table.empty:
        with tempfile.TemporaryDirectory() as tmp:
            for (dataset, protocol), part in table.groupby(["dataset", "protocol"], sort=False):
                part = part.dropna(axis=1, how="all")  # another dataset's bins are not this one's
                slug = _slug(dataset, protocol)
                written.add(slug)
                bins = sorted(
                    (c for c in part.columns if c.startswith(("rmse_bin_", "bias_bin_"))), key=_bin_order
                )
                _csv(part[[c for c in keep + common if c in part] + bins], out / "tables" / f"{slug}.csv")
                sel = runs[(runs["dataset"] == dataset) & (runs["protocol"] == protocol)]
                tiles = _tiles(tracker, sel, list(part["method"]), Path(tmp) / slug) if tracker else {}
                names = figures.Names.of(part)
                title = f"{dataset} · {protocol}"
                panel = out / "figures" / f"{slug}_tiles.png"
                # predictions live in MLflow artifacts, not in records: a store that lacks some
                # methods' (a contributor's) keeps the published panel rather than a partial one
                if len(tiles) == len(part) or (tiles and not panel.exists()):
                    figures.qualitative(tiles, panel, title, names=names)
                figures.error_by_bin(part, out / "figures" / f"{slug}_bins.png", names)
                figures.speed(part, out / "figures" / f"{slug}_speed.png", names)
    for old in [*(out / "figures").glob("*.png"), *(out / "tables").glob("*.csv")]:
        if old.stem.rsplit("_", 1)[0] not in written and old.stem not in written:
            old.unlink()  # sections that are gone take their files along
    return table


def _bin_order(column: str) -> tuple[str, float]:
    """``rmse_bin_lt10``, ``rmse_bin_10-50``, ..., ``rmse_bin_ge300`` in the order of their values."""
    kind, _, name = column.rpartition("_bin_")
    return kind, bin_lower_bound(name)


def _csv(frame: pd.DataFrame, path: Path) -> None:
    """Stable bytes: fixed columns and order, numbers to six significant digits."""
    frame.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")


def _tiles(tracker: Tracker, runs: pd.DataFrame, methods: list[str], tmp: Path) -> dict[str, Any]:
    """``tiles.npz`` of each method's lowest-seed run."""
    found: dict[str, Any] = {}
    for method in methods:
        sel = runs[(runs["method"] == method) & (runs["run_id"] != "")].sort_values("seed")
        if sel.empty:
            continue
        path = tracker.download(sel.iloc[0]["run_id"], "tiles.npz", tmp / method)
        if path is not None and path.exists():
            with np.load(path) as data:
                found[method] = {k: data[k] for k in data.files}
    return found
