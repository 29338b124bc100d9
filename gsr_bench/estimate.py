"""``gsr-bench estimate``: what a run would do and how long it would take, before it starts.

Each job's time comes from rates saved by ``gsr-bench bench`` on the chosen device: training
pixels (steps x batch x patch^2) over the training rate, validation and test tiles over the
inference rate, and per-tile optimizers (P2P) scaled from the iterations they were timed with to
the protocol's. Fixed costs (start-up, compilation, data loading) are left out: these are lower
bounds of GPU time, good to compare budgets and to catch a protocol that cannot finish.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gsr_bench.errors import GsrBenchError

STORE_GUIDE_BYTES = {"float16": 2, "float32": 4}


@dataclass
class JobEstimate:
    name: str
    method: str
    seed: int
    train_s: float
    eval_s: float
    basis: str  # which rates were used

    @property
    def total_s(self) -> float:
        return self.train_s + self.eval_s


@dataclass
class DataEstimate:
    dataset: str
    chips: int
    gigabytes: float


def reference_rates() -> dict[str, Path]:
    """Rates shipped with the package, by name (``h200-reference``): for planning a GPU run on
    a machine without one; each entry says what was measured and what was assumed."""
    from importlib import resources

    folder = Path(str(resources.files("gsr_bench") / "rates"))
    return {p.stem: p for p in sorted(folder.glob("*.json"))}


def load_rates(
    folder: Path, device: str | None = None, path: Path | None = None
) -> dict[str, dict[str, Any]]:
    """The newest saved timing of each method on ``device`` (a device name from ``bench``, or a
    substring such as ``H200``), or those of the file ``path`` (or a reference name)."""
    if path is not None and not path.exists() and str(path) in reference_rates():
        path = reference_rates()[str(path)]
    files = [path] if path else sorted(folder.glob("*.json")) if folder.exists() else []
    rates: dict[str, dict[str, Any]] = {}
    for file in files:
        try:
            timings = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise GsrBenchError(f"{file}: not a saved bench file ({exc})") from None
        for t in timings:
            if path or device is None or device.lower() in t["device"].lower():
                rates[t["method"]] = t  # files sort in time order: the newest wins
    if not rates:
        where = f"{path}" if path else f"{folder} for device {device!r}"
        raise GsrBenchError(
            f"no saved bench rates in {where}: time this device first with "
            f"`gsr-bench bench --device {device or 'cuda'}` (or pass --rates FILE)"
        )
    return rates


def estimate_job(job: Any, counts: dict[str, int], rates: dict[str, dict[str, Any]]) -> JobEstimate:
    """One job's GPU time from ``rates``; ``counts`` are its train, val and test tiles."""
    name = job.method.name
    if name not in rates:
        raise GsrBenchError(
            f"no bench rate for method {name!r}: run `gsr-bench bench -m {name}` on this device"
        )
    rate = rates[name]
    p, crop = job.protocol, job.protocol.task.crop
    infer = rate["mpix_s"] * 1e6
    timed_iterations = (rate.get("options") or {}).get("iterations")
    eval_s = counts["test"] * crop**2 / infer
    train_s, basis = 0.0, "inference"
    if rate.get("train_mpix_s"):
        t = p.train
        train_s = t.steps * t.batch_size * t.patch_size**2 / (rate["train_mpix_s"] * 1e6)
        train_s += (t.steps // max(t.val_every, 1)) * counts["val"] * crop**2 / infer
        basis = "training + inference"
    if timed_iterations:  # per-tile optimizers: the protocol's iterations at the measured cost of one
        if rate.get("iteration_s") is None:
            raise GsrBenchError(
                f"{name}: the saved rate has no per-iteration time; rerun `gsr-bench bench -m {name}`"
            )
        calls = counts["test"] / rate["batch"]
        eval_s += calls * rate["iteration_s"] * (p.train.per_image_iterations - timed_iterations)
        per_call = f"{rate['iteration_s'] * 1e3:.3g} ms / {rate['batch']} tiles"
        basis = f"{p.train.per_image_iterations} iterations x {per_call}"
    if rate.get("derived"):
        basis = rate["derived"]
    timed = {k: v for k, v in (rate.get("options") or {}).items() if k != "iterations"}
    used = {k: job.method_options.get(k) for k in timed}
    if timed != used:  # e.g. ResNeXt timed at the CPU width, run at the paper's
        basis += f"; timed with {timed}, the job uses {used}"
    return JobEstimate(job.name, name, job.seed, train_s, eval_s, basis)


def flops_per_mpix(
    spec: Any, channels: int = 14, options: dict[str, Any] | None = None
) -> tuple[float, bool]:
    """FLOPs torch counts in one prediction of a 250 x 250 tile on the CPU, per output Mpix
    (convolutions and products only: elementwise work such as DADA's diffusion is not counted),
    and whether the method is trained; with ``options``, or else those a CPU times it with."""
    import torch

    from gsr_bench.bench import SERIES_PERIODS, bench_inputs, bench_options, count_flops
    from gsr_bench.method import TorchMethod

    cpu = torch.device("cpu")
    task, guide, source = bench_inputs(channels, SERIES_PERIODS if spec.temporal else 1, 1, cpu)
    method = spec.create(task, **(bench_options(spec.name, cpu) if options is None else options))
    with torch.no_grad():
        flops = count_flops(method, guide, source) / (250 * 250) * 1e6
    return flops, isinstance(method, TorchMethod)


def _rate_flops(rate: dict[str, Any], manager: Any) -> float:
    """FLOPs per Mpix of the method a rate timed, with the options it was timed with: as
    ``gsr-bench bench`` recorded them, or counted now for a rate that lacks them."""
    if rate.get("flops_per_pixel"):
        return float(rate["flops_per_pixel"]) * 1e6
    return flops_per_mpix(manager.methods.get(rate["method"]), options=rate.get("options") or {})[0]


def derive_rates(
    names: Sequence[str], rates: dict[str, dict[str, Any]], manager: Any
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Rates for methods ``rates`` lacks, from their FLOP count at the effective FLOP/s of the
    learned methods that were measured (the median of rate x FLOPs), marked ``derived``; and why
    the others could not be derived."""
    import statistics

    measured = [r for r in rates.values() if r.get("train_mpix_s") and r["method"] in manager.methods]
    if not measured:
        return {}, {name: "no measured learned method to calibrate FLOP/s with" for name in names}
    flops = {r["method"]: _rate_flops(r, manager) for r in measured}
    effective = statistics.median(r["mpix_s"] * flops[r["method"]] for r in measured if flops[r["method"]])
    train_share = statistics.median(r["train_mpix_s"] / r["mpix_s"] for r in measured)
    derived, why = {}, {}
    for name in names:
        spec = manager.methods.get(name)
        own, learned = flops_per_mpix(spec)
        if own < 1e6:  # interpolation, filters: no counted FLOPs to scale
            why[name] = "no FLOPs counted: time it with `gsr-bench bench`"
            continue
        rate = effective / own
        derived[name] = {
            "method": name,
            "device": next(iter(rates.values()))["device"],
            "mpix_s": rate,
            "train_mpix_s": rate * train_share if learned else None,
            "options": {},
            "derived": (
                f"derived from {own / 1e9:.3g} GFLOP/Mpix at {effective / 1e12:.3g} TFLOP/s, the median "
                f"of {len(measured)} measured methods (elementwise work not counted: a lower bound)"
            ),
        }
    return derived, why


def estimate(
    jobs: Sequence[Any], rates: dict[str, dict[str, Any]], manager: Any = None
) -> tuple[list[JobEstimate], list[DataEstimate], dict[str, str]]:
    """Every job's estimate, the data each dataset needs prepared, and the methods without a
    rate (with why). Methods without a saved rate are estimated from their FLOP count when
    ``manager`` is given (:func:`derive_rates`), marked as such in their basis."""
    missing = sorted({j.method.name for j in jobs if j.method.name not in rates})
    why: dict[str, str] = {name: "no bench rate" for name in missing}
    if missing and manager is not None:
        derived, why = derive_rates(missing, rates, manager)
        rates = {**rates, **derived}
    out, data, seen = [], [], set()
    for job in jobs:
        if job.method.name not in rates:
            continue
        dataset = job.dataset.create(**job.dataset_options)
        chips = dataset.tile_counts()
        d = job.protocol.data
        train_tiles = round(chips["train"] * 0.9)
        counts = {
            "train": min(train_tiles, d.max_train_tiles or train_tiles),
            "val": min(chips["train"] - train_tiles, d.max_val_tiles or chips["train"]),
            "test": min(chips["test"], d.max_test_tiles or chips["test"]),
        }
        out.append(estimate_job(job, counts, rates))
        key = (job.dataset.name, json.dumps(job.dataset_info, sort_keys=True, default=str), d.guide_dtype)
        if key not in seen:
            seen.add(key)
            crop, lr = job.protocol.task.crop, job.protocol.task.crop // dataset.scale
            channels = len(dataset.guide_channels)
            per_tile = crop * crop * (channels * STORE_GUIDE_BYTES[d.guide_dtype] + 4 + 1) + lr * lr * 4
            total = chips["train"] + chips["test"]
            data.append(DataEstimate(job.dataset.name, total, total * per_tile / 1e9))
    return out, data, {name: why[name] for name in missing if name not in rates}
