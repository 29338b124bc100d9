"""``python -m gsr_bench``: the command line, also as ``torchrun -m gsr_bench run --ddp``."""

import sys

from gsr_bench.cli import main

sys.exit(main())
