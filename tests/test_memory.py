"""The daemon's allocator settings (rotordream.service.tune_memory; bench/memory.py measures)."""

import subprocess
import sys

PROBE = """
import ctypes
from rotordream.service import tune_memory
applied = tune_memory()
print(applied, ctypes.CDLL(None).prctl(42, 0, 0, 0, 0))  # PR_GET_THP_DISABLE
"""


def test_tune_memory_applies_the_allocator_settings():
    # A process of its own: the settings stay for the life of the process that makes them.
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out == ["True", "1"]


def test_the_daemon_runs_with_transparent_huge_pages_off(daemon):
    with open("/proc/%d/status" % daemon.proc.pid) as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    assert status["THP_enabled"].strip() == "0"
