"""Targets, the printed table, and the files in `bench/results/` (JSON and markdown)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.stages import STAGES

INGEST_RATIO = 0.40
INGEST_P99_MS = 20.0
E2E_P99_MS = 50.0
FANOUT_RATIO = 0.50
FANOUT_CASES = (("wide", "events → 100 subscribers"), ("deep", "5,000 events → 1 subscriber"))


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def ratio(a: float | None, b: float | None) -> float | None:
    if not a or not b:
        return None
    return round(a / b, 3)


def _pct(x: float | None, digits: int = 0) -> str:
    return "—" if x is None else f"{x * 100:.{digits}f} %"


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f} ms"


def _us(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f} µs"


def _cpu(x: dict[str, Any]) -> str:
    """An ingest row's CPU per request, with the kernel's share of it when recorded."""
    total, system = x.get("server_cpu_us_per_request"), x.get("server_sys_us_per_request")
    text = _us(total) if system is None or total is None else f"{_us(total)} ({system:,.0f})"
    return _with_postgres(text, x.get("postgres_cpu_us_per_request"))


def _with_postgres(text: str, postgres_us: float | None) -> str:
    """A CPU figure of Callboard's, then the PostgreSQL server's over the same window when measured."""
    return text if postgres_us is None else f"{text} + {postgres_us:,.0f} PostgreSQL"


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


def _pct1(x: float | None) -> str:
    return _pct(x, 1)


def rounds_text(entry: dict[str, Any] | None, key: str = "ratio", fmt: Callable[[Any], str] = _pct1) -> str:
    """The spread of a repeated measurement ("median of 3 rounds (23.1 %, 25.0 %, 31.2 %)"), or ""."""
    rounds = (entry or {}).get("rounds") or []
    if len(rounds) < 2:
        return ""
    return f"median of {len(rounds)} rounds ({', '.join(fmt(r.get(key)) for r in rounds)})"


def _with_rounds(text: str, entry: dict[str, Any] | None) -> str:
    spread = rounds_text(entry)
    return f"{text}; {spread}" if spread else text


#: steal (the host's share of both cores during a scenario, `bench.machine.StealMeter`) at which a
#: target's row says so: the night of 2026-12-07 had runs at 0.0-0.7 % and one starved at 9 %
STEAL_NOTED = 1.0


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target and backend: what was measured, and whether the target is met."""
    rows: list[dict[str, Any]] = []

    def add(scenario: str, row: dict[str, Any]) -> None:
        """`scenario`: the one the target is measured in (`host_steal_percent`'s keys)."""
        rows.append(_with_steal(row, scenario, results))

    for backend, r in results.get("backends", {}).items():
        cb = _get(r, "ingest", "callboard")
        if cb is not None:
            x = ratio(cb.get("rps"), _get(r, "ingest", "noop", "rps"))
            p99 = cb.get("p99_ms")
            met = bool(
                x is not None
                and p99 is not None
                and x >= INGEST_RATIO
                and p99 < INGEST_P99_MS
                and not cb.get("reused_items")
                and not cb.get("errors")
            )
            add(
                "ingest",
                {
                    "backend": backend,
                    "target": "ingest ≥ 40 % of the no-op handler with p99 < 20 ms",
                    # one decimal: 49.7 % misses 50
                    "measured": _with_rounds(
                        f"{_pct(x, 1)} of no-op, p99 {_ms(p99)}{_levels_chosen(r)}", _get(r, "ingest")
                    ),
                    "value": x,
                    "met": met,
                },
            )
        fixed = _get(r, "e2e", "fixed_rate")
        if _get(r, "e2e") is not None:
            p99 = _get(fixed, "latency_ms", "p99")
            problems = [p for p in (_get(fixed, "problems") or []) if not p.startswith("p99")]
            met = bool(p99 is not None and p99 < E2E_P99_MS and not problems)
            measured = f"p99 {_ms(p99)}" + (f" ({'; '.join(problems)})" if problems else "")
            if spread := rounds_text(fixed, "p99_ms", _ms):
                measured += f"; {spread}"
            if _get(r, "e2e", "error"):
                measured = "error"
            add(
                "e2e",
                {
                    "backend": backend,
                    "target": "end-to-end p99 < 50 ms at 500 callbacks/s",
                    "measured": measured,
                    "value": p99,
                    "met": met,
                },
            )
        for case, label in FANOUT_CASES:
            got = _get(r, "fanout", case, "callboard", "deliveries_per_s")
            if _get(r, "fanout", case) is None:
                continue
            x = ratio(got, _get(r, "fanout", case, "aiohttp", "deliveries_per_s"))
            add(
                "fanout",
                {
                    "backend": backend,
                    "target": f"fan-out, {label}: ≥ 50 % of bare aiohttp",
                    "measured": _with_rounds(f"{_pct(x, 1)} of bare aiohttp", _get(r, "fanout", case)),
                    "value": x,
                    "met": bool(x is not None and x >= FANOUT_RATIO),
                },
            )
    return rows


def _with_steal(row: dict[str, Any], scenario: str, results: dict[str, Any]) -> dict[str, Any]:
    """The row with the host's share of the CPUs during its scenario, said beside the figure when
    it reached STEAL_NOTED: a target missed (or met) while the host took that much is a figure of
    the hour, not of Callboard alone."""
    share = _get(results, "host_steal_percent", row["backend"], scenario)
    if share is None:
        return row
    noted = f"; the host took {share:.1f} % of the CPUs meanwhile (steal)" if share >= STEAL_NOTED else ""
    return {**row, "measured": row["measured"] + noted, "host_steal_percent": share}


def _levels_chosen(r: dict[str, Any]) -> str:
    """Which levels of connections the two figures of an ingest ratio were taken at."""
    cb, noop = _get(r, "ingest", "callboard", "connections"), _get(r, "ingest", "noop", "connections")
    if cb is None or noop is None:
        return ""
    return f", {cb} connections against the no-op's {noop}"


def _levels_note(backends: dict[str, Any]) -> list[str]:
    """Every level of the reported round: requests/s (p99) by connections, per server."""
    lines = []
    for backend, r in backends.items():
        for key in ("noop", "callboard", "callboard_with_workers"):
            x = _get(r, "ingest", key) or {}
            levels = x.get("levels") or []
            if len(levels) < 2:
                continue
            name = "no-op" if key == "noop" else x.get("server", key)
            each = ", ".join(
                f"{lv['connections']}: {_num(lv.get('rps'))} ({_ms(lv.get('p99_ms'))})" for lv in levels
            )
            lines.append(f"- {backend}, {name}: {each}")
    if not lines:
        return []
    return [
        "",
        "Requests/s (p99) at each level of connections of the round reported; each row above is its server's"
        " best level, Callboard's among those with p99 < 20 ms:",
        "",
        *lines,
    ]


def _rounds_note(entries: list[tuple[str, dict[str, Any] | None]]) -> list[str]:
    spreads = [f"{name}: {text}" for name, entry in entries if (text := rounds_text(entry))]
    if not spreads:
        return []
    return [
        "",
        "Each row pair is the round whose ratio is the median of those measured, the ceiling and Callboard"
        " in turn; " + "; ".join(spreads) + ".",
    ]


def _fanout_case(c: dict[str, Any], case: str, label: str) -> str:
    """A fan-out case's name, the wide one with its number of events."""
    events = _get(c, "callboard", "events") or _get(c, "aiohttp", "events")
    return label.replace("events", f"{events} events", 1) if case == "wide" else label


def _steal(steal: dict[str, dict[str, float | None]] | None) -> list[str]:
    """The host's share of the CPUs during each backend's scenarios (nothing for results without it)."""

    def share(p: float | None) -> str:
        return "—" if p is None else f"{p:.1f} %"

    parts = [
        f"{backend} " + ", ".join(f"{scenario} {share(p)}" for scenario, p in by_scenario.items())
        for backend, by_scenario in (steal or {}).items()
        if by_scenario
    ]
    if not parts:
        return []
    return ["- CPU time taken by the host (steal), share of both cores during each scenario: " + "; ".join(parts)]


def _connections(levels: list[int] | tuple[int, ...]) -> str:
    """`32, 64 and 128`, or one number."""
    text = [str(n) for n in levels]
    return text[0] if len(text) == 1 else ", ".join(text[:-1]) + " and " + text[-1]


def _mib(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f} MiB"


def _memory(backends: dict[str, Any]) -> list[str]:
    """Each server's peak resident memory (VmHWM) in each scenario, beside its ceiling's."""
    rows = []
    for backend, r in backends.items():
        ingest = _get(r, "ingest") or {}
        noop = _get(ingest, "noop", "server_peak_rss_mib")
        for key in ("callboard", "callboard_with_workers"):
            if (x := ingest.get(key)) and x.get("server_peak_rss_mib") is not None:
                server = f"ingest, {x.get('server', key)}"
                rows.append((backend, server, x["server_peak_rss_mib"], noop, "no-op handler"))
        if (peak := _get(r, "e2e", "server_peak_rss_mib")) is not None:
            rows.append((backend, "end to end, fixed rate and ramp", peak, None, ""))
        for case, label in FANOUT_CASES:
            c = _get(r, "fanout", case) or {}
            if (peak := _get(c, "callboard", "server_peak_rss_mib")) is not None:
                bare = _get(c, "aiohttp", "client_peak_rss_mib")
                rows.append((backend, f"fan-out, {_fanout_case(c, case, label)}", peak, bare, "bare aiohttp"))
    if not rows:
        return []
    out = [
        "",
        "## Memory (peak resident set of each server, over its whole run)",
        "",
        "| backend | scenario | Callboard | ceiling |",
        "|---|---|---:|---:|",
    ]
    for backend, scenario, peak, ceiling, what in rows:
        out.append(f"| {backend} | {scenario} | {_mib(peak)} | {_mib(ceiling)}{f' ({what})' if ceiling else ''} |")
    return out


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    m, v, g = meta["machine"], meta["versions"], meta["git"]
    backends = results.get("backends", {})
    commit = (g.get("commit") or "?")[:12]
    out = [
        f"# Callboard benchmark, {meta['started_at']}{' (--quick)' if meta['quick'] else ''}",
        "",
        f"- commit `{commit}` {g.get('subject') or ''}" + (" (plus uncommitted changes)" if g.get("dirty") else ""),
        f"- machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['memory_gib']} GiB, {m['os']}",
        f"- load average before / after: {meta.get('loadavg_before')} / {meta.get('loadavg_after')}",
        *_steal(results.get("host_steal_percent")),
        f"- pinning: {meta['pinning']}",
        f"- ingest load: {meta['load_generator']}, {_connections(meta['connections'])} connections (each"
        " server's best level); end to end: Python open loop",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        f"- took {meta['seconds']:.0f} s",
        "",
        "## Ingest (closed loop; signed ~1.5 KB generic callbacks, one job each, durable before the 200)",
        "",
        "| backend | server | connections | req/s | p50 | p99 | vs no-op"
        " | server CPU per request (of it kernel) [+ PostgreSQL's] |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, r in backends.items():
        noop = _get(r, "ingest", "noop") or {}
        if not _get(r, "ingest"):
            continue
        out.append(
            f"| {backend} | no-op Starlette handler (ceiling) | {noop.get('connections', '–')} | "
            f"{_num(noop.get('rps'))} | "
            f"{_ms(noop.get('p50_ms'))} | {_ms(noop.get('p99_ms'))} | 100 % "
            f"| {_cpu(noop)} |"
        )
        for key in ("callboard", "callboard_with_workers"):
            x = _get(r, "ingest", key)
            if not x:
                continue
            if "rps" not in x:
                out.append(f"| {backend} | {key} | | error: {x.get('error')} | | | | |")
                continue
            flag = " ⚠ callbacks reused" if x.get("reused_items") else ""
            flag += f" ⚠ {x['errors']} errors" if x.get("errors") else ""
            out.append(
                f"| {backend} | {x.get('server', key)} | {x.get('connections', '–')} | {_num(x['rps'])} | "
                f"{_ms(x['p50_ms'])} | "
                f"{_ms(x['p99_ms'])} | {_pct(ratio(x['rps'], noop.get('rps')))}{flag} | "
                f"{_cpu(x)} |"
            )
    out += _levels_note(backends)
    out += _rounds_note([(f"{b} ingest", _get(r, "ingest")) for b, r in backends.items()])
    out += [
        "",
        "## End to end (callback in → signed delivery received by the sink)",
        "",
        "| backend | rate | p50 | p99 | max | delivered | server CPU per callback [+ PostgreSQL's]"
        " | highest rate sustained with p99 < 50 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, r in backends.items():
        e = r.get("e2e")
        if not e:
            continue
        if "fixed_rate" not in e:
            out.append(f"| {backend} | error: {e.get('error')} | | | | | | |")
            continue
        f = e["fixed_rate"]
        top = f"{_num(e['max_sustained_rate'])}/s" if e.get("max_sustained_rate") else "none"
        if e.get("ramp_top_reached"):
            top += " (top of the ramp)"
        elif e.get("ramp_stopped_by_generator"):
            top += " (next step: the generator's limit)"
        lat = f["latency_ms"]
        out.append(
            f"| {backend} | {_num(f['rate'])}/s | {_ms(lat['p50'])} | {_ms(lat['p99'])} | {_ms(lat['max'])}"
            f" | {f['delivered']}/{f['sent']}"
            f" | {_with_postgres(_us(f.get('server_cpu_us_per_callback')), f.get('postgres_cpu_us_per_callback'))}"
            f" | {top} |"
        )
    repeated = [
        f"{b}: " + ", ".join(f"{_ms(x.get('p50_ms'))} / {_ms(x.get('p99_ms'))}" for x in rounds)
        for b, r in backends.items()
        if len(rounds := _get(r, "e2e", "fixed_rate", "rounds") or []) > 1
    ]
    if repeated:
        out += [
            "",
            "The fixed rate ran once per round; the row is the round whose p99 is the median. Every"
            " round's p50 / p99: " + "; ".join(repeated) + ".",
        ]
    staged = [(b, st) for b, r in backends.items() if (st := _get(r, "e2e", "fixed_rate", "stages_ms"))]
    if staged:
        out += [
            "",
            "Where the time goes at the fixed rate, from the server's log lines and attempts and the"
            " generator's 200s (p50 / p99; see `bench/stages.py`): stored = the handler's write to its 200"
            " (as the generator read it), processed = the 200 to the"
            " job's finish committed, attempted = the finish to the end of the delivery's first POST"
            " (hand-over or claim, POST), POST = the request alone:",
            "",
            "| backend | stored | processed | attempted | POST |",
            "|---|---:|---:|---:|---:|",
        ]
        for b, st in staged:
            cells = " | ".join(f"{_ms(st[k]['p50'])} / {_ms(st[k]['p99'])}" for k in STAGES)
            out.append(f"| {b} | {cells} |")
    steps = [(b, s) for b, r in backends.items() for s in (_get(r, "e2e", "steps") or [])]
    if steps:
        out += [
            "",
            "Steps:",
            "",
            "| backend | rate | achieved | p50 | p99 | delivered | verdict |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for b, s in steps:
            verdict = "sustained" if s["sustained"] else "; ".join(s["problems"])
            out.append(
                f"| {b} | {_num(s['rate'])}/s | {_num(s['achieved_rate'])}/s | {_ms(s['latency_ms']['p50'])}"
                f" | {_ms(s['latency_ms']['p99'])} | {s['delivered']}/{s['sent']} | {verdict} |"
            )
    out += [
        "",
        "## Fan-out (deliveries/s at the sink while a backlog drains)",
        "",
        "| backend | case | bare aiohttp (ceiling) | Callboard | vs aiohttp"
        " | CPU per delivery, bare / Callboard [+ PostgreSQL's]"
        " | one event → all subscribers |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for backend, r in backends.items():
        for case, label in FANOUT_CASES:
            c = _get(r, "fanout", case)
            if not c:
                continue
            a = _get(c, "aiohttp", "deliveries_per_s")
            got = _get(c, "callboard", "deliveries_per_s")
            one = _get(c, "callboard", "one_event_callback_to_last_delivery_ms")
            one_text = f"p50 {_ms(one['p50'])}" if one and one.get("count") else ""
            if _get(c, "callboard", "error"):
                got_text = f"error: {c['callboard']['error']}"
            else:
                got_text = _num(got)
            name = _fanout_case(c, case, label)
            cpu = (
                f"{_us(_get(c, 'aiohttp', 'client_cpu_us_per_delivery'))} / "
                f"{_us(_get(c, 'callboard', 'server_cpu_us_per_delivery'))}"
            )
            cpu = _with_postgres(cpu, _get(c, "callboard", "postgres_cpu_us_per_delivery"))
            out.append(f"| {backend} | {name} | {_num(a)} | {got_text} | {_pct(ratio(got, a))} | {cpu} | {one_text} |")
    out += _rounds_note(
        [(f"{b} {case}", _get(r, "fanout", case)) for b, r in backends.items() for case, _ in FANOUT_CASES]
    )
    httpx = _get(results, "for_the_record", "fanout_httpx")
    if httpx:
        out += [
            "",
            "For the record, a bare httpx client at the same concurrency: "
            + ", ".join(
                f"{case} {_num(_get(httpx, case, 'deliveries_per_s'))} deliveries/s" for case, _ in FANOUT_CASES
            )
            + ".",
        ]
    out += _memory(backends)
    out += ["", "## Targets", "", "| backend | target | measured | met |", "|---|---|---|---|"]
    for t in results.get("targets", []):
        out.append(f"| {t['backend']} | {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    errors = results.get("errors") or []
    if errors:
        out += ["", "## Errors", ""] + [f"- {e}" for e in errors]
    notes = meta.get("notes") or []
    if notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def write(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(results["meta"]["started_epoch"]))
    commit = (results["meta"]["git"].get("commit") or "nocommit")[:10]
    stem = f"{stamp}-{commit}{'-quick' if results['meta']['quick'] else ''}"
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    md_path.write_text(markdown(results))
    return json_path, md_path
