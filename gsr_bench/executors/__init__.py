"""Executors: where and how jobs run. ``local`` runs them here one at a time (and hands them to
Ray with the same bookkeeping), ``ray`` holds the Ray task and cluster parts, ``ddp`` the ranks
that follow rank 0 under ``torchrun``."""
