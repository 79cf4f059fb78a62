"""``panoptool bench``: the benchmark harness (:mod:`.core`) and one module per stage measured.
"""

from panoptool.bench.core import (BenchConfig, BenchSection, STAGES, available_stages,
                                  machine_line, merge_report, peak_rss_mib, run_stage_here,
                                  run_stage_isolated)  # noqa: F401
