"""One module per stage, each with ``run(config: BenchConfig) -> BenchSection``."""
