"""TIFF input: compressed files decode, and a missing codec is named as such, not as a bad file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile

from gsr_bench.data.tiff import read_tiff


def test_lzw_tiff_reads_and_a_missing_codec_says_how_to_get_it(tmp_path: Path) -> None:
    path = tmp_path / "lzw.tif"
    image = np.random.default_rng(0).random((32, 32, 4)).astype(np.float32)
    tifffile.imwrite(path, image, compression="lzw", photometric="minisblack", planarconfig="contig")
    np.testing.assert_array_equal(read_tiff(path, 4), np.moveaxis(image, -1, 0))
    assert read_tiff(path, None).shape == (4, 32, 32)
    # a Python where imagecodecs cannot be imported (as before it was a dependency)
    code = (
        "import sys; sys.modules['imagecodecs'] = None\n"
        "from pathlib import Path\nfrom gsr_bench.data.tiff import read_tiff\n"
        f"read_tiff(Path({str(path)!r}), 4)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    last = proc.stderr.strip().splitlines()[-1]
    assert "compressed with LZW" in last and "pip install imagecodecs" in last
    assert "not a readable TIFF" not in last
