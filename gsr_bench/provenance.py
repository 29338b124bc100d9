"""What a result needs to be reproduced: code version, git state, package versions, device."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = (
    "gsr-bench",
    "torch",
    "timm",
    "numpy",
    "scipy",
    "pandas",
    "scikit-image",
    "h5py",
    "tifffile",
    "mlflow",
    "pluggy",
)


@lru_cache(maxsize=1)
def git_hash() -> str:
    """Commit of the gsr-bench checkout (``+dirty`` with local changes outside ``leaderboard/``),
    or ``unknown``."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        # the generated leaderboard is what a run writes, not the code it ran
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)leaderboard"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def device_name(device: object) -> str:
    import torch

    dev = torch.device(str(device))
    if dev.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(dev)}"
    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def distribution_info(name: str) -> dict[str, str]:
    """Name, version and where to get a plugin's distribution, from its installed metadata.

    ``url`` is a VCS requirement (``git+https://...@COMMIT``) when it was installed from one, else
    the project's home page or first project URL; never a local path. ``requirement`` pins the
    version (``NAME==VERSION``), installable when the distribution is on an index.
    """
    import json
    from importlib.metadata import distribution

    if not name:
        return {"name": "", "version": "", "url": "", "requirement": ""}
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        return {"name": name, "version": "", "url": "", "requirement": ""}
    meta = dist.metadata
    url = ""
    direct = dist.read_text("direct_url.json")
    if direct:
        try:
            info = json.loads(direct)
        except ValueError:
            info = {}
        vcs = info.get("vcs_info") or {}
        if vcs and not str(info.get("url", "")).startswith("file:"):
            url = f"{vcs.get('vcs', 'git')}+{info['url']}@{vcs.get('commit_id', '')}"
    if not url:
        try:
            url = str(meta["Home-page"] or "")
        except KeyError:  # importlib_metadata raises where the stdlib gives None
            url = ""
    if not url:
        for entry in meta.get_all("Project-URL") or []:
            url = entry.partition(",")[2].strip()
            if url:
                break
    return {
        "name": dist.metadata["Name"],
        "version": dist.version,
        "url": url,
        "requirement": f"{dist.metadata['Name']}=={dist.version}",
    }
