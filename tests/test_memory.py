import os
import subprocess
import sys

import pytest

from attnviz.memory import MALLOC_ENV, cpu_peak_supported

pytestmark = pytest.mark.skipif(not cpu_peak_supported(), reason="needs Linux /proc/self/clear_refs")

SCRIPT = """
import torch
from attnviz.memory import peak_memory
torch.ones(10)  # warm the allocator
with peak_memory() as small:
    a = torch.ones(1024)
    del a
with peak_memory() as big:
    x = torch.ones(100 * 2**20 // 4)   # 100 MiB
    y = torch.ones(50 * 2**20 // 4)    #  50 MiB while x lives: peak 150
    del x, y
with peak_memory() as after:
    z = torch.ones(20 * 2**20 // 4)    # 20 MiB: the 150 MiB peak before must not leak in
print(small.peak_mib, big.peak_mib, after.peak_mib)
"""


def test_net_peak_counts_live_tensors_and_resets_between_blocks():
    env = dict(os.environ, **MALLOC_ENV)
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True)
    small, big, after = map(float, out.stdout.split())
    assert small < 2
    assert 150 * 0.98 <= big <= 150 * 1.05
    assert 20 * 0.98 <= after <= 20 * 1.1
