"""The benchmark runs: `python -m bench --quick` finishes and writes results that parse.

No timing is asserted here (figures depend on the machine and on what else runs on it); the
numbers are for `python -m bench` and `docs/benchmarks.md`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from bench.machine import ROOT


def test_quick_run_writes_results(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--backend", "sqlite", "--no-install", "--quiet",
         "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (json_file,) = tmp_path.glob("*.json")
    (md_file,) = tmp_path.glob("*.md")
    results = json.loads(json_file.read_text())
    assert results["meta"]["quick"] is True
    assert results["meta"]["git"]["commit"]
    assert not results["errors"]
    sqlite = results["backends"]["sqlite"]
    assert sqlite["ingest"]["callboard"]["requests"] > 0
    assert sqlite["ingest"]["noop"]["requests"] > 0
    # --quick measures each pair once; the round reported is that one, its ratio recorded
    assert sqlite["ingest"]["reported_round"] == 1
    assert sqlite["ingest"]["rounds"][0]["ratio"] > 0
    # both servers at every level of connections, the one reported among them
    for who in ("noop", "callboard"):
        levels = sqlite["ingest"][who]["levels"]
        assert [level["connections"] for level in levels] == [32, 64, 128]
        assert all(level["requests"] > 0 for level in levels)
        assert sqlite["ingest"][who]["connections"] in (32, 64, 128)
    fixed = sqlite["e2e"]["fixed_rate"]
    assert fixed["delivered"] > 0
    # the step's callbacks are found in the server's log at every stage, none from other steps
    stages = fixed["stages_ms"]
    assert sorted(stages) == ["attempted", "post", "processed", "stored"]
    assert all(0 < summary["count"] <= fixed["sent"] for summary in stages.values()), stages
    for case in ("wide", "deep"):
        assert sqlite["fanout"][case]["callboard"]["deliveries"] > 0
        assert sqlite["fanout"][case]["aiohttp"]["deliveries"] > 0
    # every server's peak resident memory, Callboard's and the ceilings', read while it ran
    peaks = [
        sqlite["ingest"]["callboard"]["server_peak_rss_mib"],
        sqlite["ingest"]["noop"]["server_peak_rss_mib"],
        sqlite["e2e"]["server_peak_rss_mib"],
        *(sqlite["fanout"][case][who][key] for case in ("wide", "deep")
          for who, key in (("callboard", "server_peak_rss_mib"), ("aiohttp", "client_peak_rss_mib"))),
    ]  # fmt: skip
    assert all(isinstance(peak, float) and peak > 0 for peak in peaks), peaks
    assert {t["backend"] for t in results["targets"]} == {"sqlite"}
    text = md_file.read_text()
    assert text.startswith("# Callboard benchmark")
    assert "| sqlite |" in text
    assert "## Memory" in text and "| sqlite | fan-out, 5,000 events → 1 subscriber |" in text


def test_profiled_run_writes_a_profile_per_server(tmp_path: Path) -> None:
    """`--profile`: py-spy samples each Callboard server; its collapsed stacks name our code."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--backend", "sqlite", "--scenario", "fanout", "--quiet",
         "--profile", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(next(tmp_path.glob("*.json")).read_text())
    profiles = Path(results["meta"]["profiles"])
    assert profiles.parent == tmp_path
    stacks = sorted(profiles.glob("*.txt"))
    # one per `callboard serve` run, named by its label: deep<n>.txt, wide<n>.txt
    assert [re.sub(r"\d+\.txt$", "", p.name) for p in stacks] == ["deep", "wide"]
    for path in stacks:
        lines = path.read_text().splitlines()
        log = path.with_suffix(".py-spy.log")
        said = log.read_text()[-2000:] if log.exists() else "(no py-spy log)"
        assert lines, f"{path.name} is empty; py-spy said: {said}"
        assert all(line.rsplit(" ", 1)[1].isdigit() for line in lines), f"{path.name}: not collapsed stacks"
        # the delivery worker was sampled
        samples = sum(int(line.rsplit(" ", 1)[1]) for line in lines)
        assert any("routes/worker.py" in line for line in lines), (
            f"{path.name}: none of {samples} samples in {len(lines)} stacks is in routes/worker.py; py-spy said: {said}"
        )
    assert any("profiled run" in note for note in results["meta"]["notes"])


def test_in_process_driver_compares_against_a_commit() -> None:
    """`python -m bench.inprocess --against HEAD`: both trees measured, pair by pair, on two cores."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.inprocess", "--callbacks", "200", "--against", "HEAD", "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert sum("µs CPU per callback" in line for line in lines) == 4  # two pairs: each tree on each core
    assert lines[-1].startswith("this tree / HEAD, CPU per callback, pair by pair: ")


def test_in_process_driver_measures_the_processor_alone() -> None:
    """`--processor-batch`: after the ingest figure, the processor drains every stored callback
    (warm-up ones too: a quarter more than `--callbacks`) and reports its own CPU figure."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.inprocess", "--callbacks", "200", "--processor-batch", "4", "--child"],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["callbacks"] == 200
    assert result["processor"]["batch"] == 4
    assert result["processor"]["callbacks"] == 250
    assert result["processor"]["cpu_us"] > 0


def test_in_process_drain_measures_the_delivery_worker() -> None:
    """`python -m bench.inprocess --deliveries N`: a backlog drained by the real worker to a sink."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.inprocess", "--deliveries", "300", "--shape", "wide"],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    [line] = done.stdout.splitlines()
    assert "µs CPU per delivery (wide)" in line
    assert float(line.split(":", 1)[1].split("µs")[0]) > 0
