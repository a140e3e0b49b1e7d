"""The host's share of the CPUs (steal), read from this machine's /proc/stat and reported per scenario."""

from __future__ import annotations

import json
import time

from bench.machine import ROOT, StealMeter, cpu_jiffies, steal_percent
from bench.report import STEAL_NOTED, markdown, targets

RESULTS = ROOT / "bench" / "results"


def test_this_machine_reports_its_cpu_ticks() -> None:
    first = cpu_jiffies()
    time.sleep(0.05)
    second = cpu_jiffies()
    assert first is not None and second is not None
    assert 0 <= first[0] <= first[1] and second[1] > first[1] and second[0] >= first[0]
    share = steal_percent(first, second)
    assert share is not None and 0.0 <= share <= 100.0
    lap = StealMeter().lap()
    assert lap is None or 0.0 <= lap <= 100.0  # None only if no tick passed between the readings


def test_steal_is_the_stolen_share_of_all_ticks_between_readings() -> None:
    assert steal_percent((100, 10_000), (130, 10_200)) == 15.0
    assert steal_percent((100, 10_000), (100, 10_000)) is None  # no time passed
    assert steal_percent(None, (1, 2)) is None


def test_the_report_says_how_much_the_host_took_per_scenario() -> None:
    results = json.loads((RESULTS / "20261207T042641Z-5d02a8f1f1.json").read_text())  # from before the line
    assert "CPU time taken by the host" not in markdown(results)
    results["host_steal_percent"] = {"sqlite": {"ingest": 0.0, "e2e": 12.5}, "postgres": {"ingest": None}}
    [line] = [line for line in markdown(results).splitlines() if "CPU time taken by the host" in line]
    assert line.endswith("each scenario: sqlite ingest 0.0 %, e2e 12.5 %; postgres ingest —")


def test_a_target_says_when_the_host_took_cpu_during_its_scenario() -> None:
    """Each target carries its scenario's steal; at STEAL_NOTED or more its figure says so, in the
    JSON's row and in the markdown's table. Results from before the readout carry none."""
    old = json.loads((RESULTS / "20261207T042641Z-5d02a8f1f1.json").read_text())
    assert all("host_steal_percent" not in row for row in targets(old))
    results = json.loads((RESULTS / "20261207T054140Z-846eddffd2.json").read_text())
    results["host_steal_percent"]["sqlite"]["ingest"] = 2.6
    results["host_steal_percent"]["postgres"]["fanout"] = STEAL_NOTED - 0.1
    all_rows = targets(results)
    rows = {(row["backend"], row["target"].split(" ")[0]): row for row in all_rows}
    assert len(all_rows) == 8 and len(rows) == 6  # the two fan-out cases share a key here
    noted = "; the host took 2.6 % of the CPUs meanwhile (steal)"
    assert rows["sqlite", "ingest"]["measured"].endswith(noted)
    assert rows["sqlite", "ingest"]["host_steal_percent"] == 2.6
    assert rows["postgres", "fan-out,"]["host_steal_percent"] == STEAL_NOTED - 0.1
    quiet = [row for row in all_rows if row is not rows["sqlite", "ingest"]]
    assert len(quiet) == 7 and all("steal" not in row["measured"] for row in quiet)
    results["targets"] = targets(results)
    [line] = [line for line in markdown(results).splitlines() if line.startswith("| sqlite | ingest ≥")]
    assert line.endswith(f"{noted} | **no** |")
