"""What ``gsr-bench data download`` prints and records: the selection's table and the counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gsr_bench.api import table
from gsr_bench_datasets.biomassters.layout import MONTHS
from gsr_bench_datasets.biomassters.selection import RemoteFile, Selection
from gsr_bench_datasets.biomassters.transfer import Outcome


@dataclass
class Tally:
    """The counts of one run, as ``download.json`` keeps them."""

    selected: int = 0
    selected_bytes: int = 0
    present: int = 0  # already verified by an earlier run
    downloaded: int = 0
    fetched_bytes: int = 0
    resumed: int = 0
    retries: int = 0
    verify_failures: int = 0  # caught and fetched again
    verified_by: dict[str, int] = field(default_factory=lambda: {"size": 0, "md5": 0, "cksum": 0})
    failed: list[dict[str, str]] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.fetched_bytes += outcome.fetched
        self.retries += outcome.retries
        self.verify_failures += outcome.verify_failures
        self.resumed += int(outcome.resumed)
        if outcome.ok:
            self.downloaded += int(outcome.fetched > 0)
            self.present += int(outcome.fetched == 0)
            for check in outcome.checks:
                self.verified_by[check] += 1
        else:
            self.failed.append({"key": outcome.file.key, "problem": outcome.problem})


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def selection_table(files: Sequence[RemoteFile], bandwidth: float) -> str:
    """Files and bytes per split and kind, and the time at ``bandwidth`` MB/s."""
    groups: dict[tuple[str, str], list[int]] = {}
    for f in files:
        g = groups.setdefault((f.split, f.kind), [0, 0])
        g[0] += 1
        g[1] += f.size or 0
    rows = [
        [s, k, str(n), _gb(b), _duration(b / (bandwidth * 1e6))] for (s, k), (n, b) in sorted(groups.items())
    ]
    total = sum(f.size or 0 for f in files)
    rows.append(["all", "", str(len(files)), _gb(total), _duration(total / (bandwidth * 1e6))])
    return table(rows, ["split", "kind", "files", "size", f"at {bandwidth:g} MB/s"])


def describe_selection(selection: Selection) -> str:
    months = ", ".join(MONTHS[m][:3] for m in selection.months)
    chips = f"{selection.chips} chips per split (seed {selection.seed})" if selection.chips else "every chip"
    if selection.chip_ids is not None:
        chips += f" among {len(selection.chip_ids)} listed ids"
    what = "+".join(selection.sensors) or "no images"
    labels = "with labels" if selection.labels else "no labels"
    return f"{'/'.join(selection.splits)}, {what} in {months}, {labels}, {chips}"


def report(tally: Tally, seconds: float, status: int) -> None:
    rate = tally.fetched_bytes / max(seconds, 1e-9) / 1e6
    print(
        f"{tally.downloaded} downloaded ({_gb(tally.fetched_bytes)} in {seconds:.1f} s, "
        f"{tally.downloaded / max(seconds, 1e-9):.1f} files/s, {rate:.1f} MB/s), {tally.present} already "
        f"there, {tally.resumed} resumed, {tally.retries} retries, {tally.verify_failures} "
        f"verification failure(s) fetched again, {len(tally.failed)} failed"
    )
    for failure in tally.failed[:20]:
        print(f"  {failure['key']}: {failure['problem']}")
    if status == 130:
        print("interrupted: rerun the same command to resume")
    elif tally.failed:
        print("some files are still wrong: rerun the same command to try them again")
