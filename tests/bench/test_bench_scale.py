"""The scale bench's memory probe counts the whole process tree (workers included)."""

import os
import subprocess
import sys
import time

from panoptool.bench.scale import TreeMemorySampler, tree_memory_bytes

_CHILD = ("import time; b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096]); "
          "print('ready', flush=True); time.sleep(30)")


def test_tree_memory_counts_children():
    """A child holding 64 MiB of its own pages raises the tree's RSS and PSS by about that."""
    before_rss, before_pss = tree_memory_bytes(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        with TreeMemorySampler(interval=0.01) as sampler:
            time.sleep(0.05)
        rss, pss = tree_memory_bytes(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert rss - before_rss > 60 << 20 and pss - before_pss > 60 << 20
    assert sampler.peak_pss >= pss - (4 << 20) and sampler.peak_rss >= sampler.peak_pss
