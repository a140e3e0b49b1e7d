"""The garbage collector's settings for a long-running server (`receiver.gc_settings`).

Each check runs in a fresh interpreter: the settings are the process's, and this one's are left
as they are.
"""

from __future__ import annotations

import json
import subprocess
import sys

from receiver.gc_settings import GEN0_THRESHOLD

PROBE = """
import gc, json
from receiver.gc_settings import tune_for_server
before = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
tune_for_server()
loaded = gc.get_freeze_count()
cycle = []
cycle.append(cycle)  # garbage made after the settings: still collected
del cycle
print(json.dumps({"before": before, "threshold": gc.get_threshold(), "frozen": loaded, "found": gc.collect()}))
"""


def test_what_is_loaded_is_frozen_and_the_youngest_generation_waits_longer() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60)
    got = json.loads(out.stdout)
    assert got["before"] == {"threshold": [700, 10, 10], "frozen": 0}  # CPython's defaults
    assert got["threshold"] == [GEN0_THRESHOLD, 10, 10]
    assert got["frozen"] > 1000  # the modules imported so far, out of the collector's reach
    assert got["found"] >= 1  # a cycle made afterwards is still collected
