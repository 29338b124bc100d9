"""Built-in method plugins of gsr-bench (import name ``gsr_bench_methods``), one file per family."""
