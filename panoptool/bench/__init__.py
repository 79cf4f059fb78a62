"""``panoptool bench``: the benchmark harness (:mod:`.core`) and one module per stage measured.
"""

from panoptool import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "panoptool.bench.core": ("BenchConfig", "BenchSection", "STAGES", "available_stages",
                             "machine_line", "merge_report", "peak_rss_mib", "run_stage_here",
                             "run_stage_isolated"),
})
__all__ = ["BenchConfig", "BenchSection", "STAGES", "available_stages", "machine_line",
           "merge_report", "peak_rss_mib", "run_stage_here", "run_stage_isolated"]
