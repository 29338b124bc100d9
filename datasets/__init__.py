"""Built-in dataset adapters of gsr-bench (import name ``gsr_bench_datasets``)."""
