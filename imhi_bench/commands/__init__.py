"""Sub-commands of the `imhi-bench` CLI, one module each (see `imhi_bench.cli`)."""
