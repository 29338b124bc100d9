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
    """Commit of the gsr-bench checkout (``+dirty`` with local changes), or ``unknown``."""
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
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
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
