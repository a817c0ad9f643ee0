"""The issue's targets, one line each: the measured figure, the peers' figures, PASS or MISS.

Measured and reported, never asserted: a MISS is a finding, not a failed run. A line whose
scenario did not run (or whose peer is missing) says "n/a" rather than guessing. Where the issue
leaves a bound open, the bound used here is written on the line ("growth" and "bounded").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.apis import CHAT, TOLERANCE
from bench.outcome import SuiteResults
from bench.report import Row as LatencyRow
from bench.throughput import Row as ThroughputRow

PG, SQLITE, FWD, PEER = "flywheel-postgres", "flywheel-sqlite", "forwarder", "litellm-proxy"
IDLE_LIMIT_MIB = 80e6 / (1024 * 1024)  # 80 MB, as MiB (RSS is read in KiB)
SOAK_LIMIT_MIB_PER_MIN = 1.0
OUTAGE_LIMIT_MIB = 32.0


@dataclass(frozen=True)
class Verdict:
    what: str
    target: str
    measured: str
    peers: str
    status: str  # PASS, MISS or n/a


def _ok(value: float | None, check: Callable[[float], bool]) -> bool | None:
    return None if value is None or math.isnan(value) else check(value)


def _status(*checks: bool | None) -> str:
    known = [c for c in checks if c is not None]
    if not known:
        return "n/a"
    return "PASS" if all(known) else "MISS"


def _f(value: float | None, fmt: str = ".3f", unit: str = "") -> str:
    return "-" if value is None or math.isnan(value) else f"{value:{fmt}}{unit}"


def _latency(r: SuiteResults) -> list[Verdict]:
    rows = {x.target: x for x in r.latency if x.mode == "nonstream"}
    pg = rows.get(PG)
    if pg is None:
        return [
            Verdict(
                "added latency, c=1, PostgreSQL",
                "p50<=1 p99<=2 ms, <=1.5x fwd",
                "not run",
                "",
                "n/a",
            )
        ]
    peers = "; ".join(
        f"{n} +p50 {_f(rows[n].added_p50_ms)} +p99 {_f(rows[n].added_p99_ms)}"
        for n in (FWD, SQLITE, PEER)
        if n in rows
    )
    return [
        Verdict(
            "added latency, c=1, PostgreSQL",
            "p50<=1 p99<=2 ms, <=1.5x fwd",
            f"+p50 {_f(pg.added_p50_ms)} +p99 {_f(pg.added_p99_ms)} ms, "
            f"{_f(pg.ratio_vs_forwarder, '.2f')}x fwd",
            peers,
            _status(
                _ok(pg.added_p50_ms, lambda v: v <= 1.0),
                _ok(pg.added_p99_ms, lambda v: v <= 2.0),
                _ok(pg.ratio_vs_forwarder, lambda v: v <= 1.5),
            ),
        )
    ]


def _throughput(r: SuiteResults) -> list[Verdict]:
    cells = {(x.target, x.concurrency): x for x in r.throughput}
    out = []
    for conc in sorted({c for _, c in cells}):
        fwd, peer = cells.get((FWD, conc)), cells.get((PEER, conc))
        peers = f"fwd {_f(fwd.rps if fwd else None, '.0f')} req/s; " + (
            f"litellm {peer.rps:.0f} req/s ({peer.errors} err)" if peer else "litellm not run"
        )
        for name in (PG, SQLITE):
            x = cells.get((name, conc))
            if x is None:
                continue
            out.append(
                Verdict(
                    f"throughput, c={conc}, 1 worker/1 core",
                    f"{name}: >=0.7x fwd, >=20x litellm, 0 err",
                    f"{x.rps:.0f} req/s, {_f(x.x_forwarder, '.2f')}x fwd, "
                    f"{_f(x.x_litellm, '.1f')}x litellm, {x.errors} err",
                    peers,
                    _status(
                        _ok(x.x_forwarder, lambda v: v >= 0.7),
                        _ok(x.x_litellm, lambda v: v >= 20),
                        x.errors == 0,
                    ),
                )
            )
    return out


def _streaming(r: SuiteResults) -> list[Verdict]:
    rows = {x.target: x for x in r.streaming}
    fwd = rows.get(FWD)
    peers = (
        f"fwd +ttft99 {_f(fwd.added_ttft_p99_ms, '.2f')} +gap99 {_f(fwd.added_gap_p99_ms, '.2f')}"
        if fwd
        else ""
    )
    return [
        Verdict(
            "streaming, 100 x 64 chunks/20 ms",
            f"{name}: +TTFT p99<=2, +gap p99<=0.5 ms",
            f"+TTFT p99 {_f(x.added_ttft_p99_ms, '.2f')}, +gap p99 "
            f"{_f(x.added_gap_p99_ms, '.2f')} ms, {x.errors} err",
            peers,
            _status(
                _ok(x.added_ttft_p99_ms, lambda v: v <= 2.0),
                _ok(x.added_gap_p99_ms, lambda v: v <= 0.5),
                x.errors == 0,
            ),
        )
        for name in (PG, SQLITE)
        if (x := rows.get(name)) is not None
    ]


CpuFigures = tuple[float | None, float | None]  # (gateway process, its database), ms/request


def _cpu_of(row: LatencyRow | ThroughputRow | None) -> CpuFigures:
    return (None, None) if row is None else (row.cpu_ms_per_request, row.db_cpu_ms_per_request)


def _cpu(r: SuiteResults) -> list[Verdict]:
    out = []
    lat = {x.target: x for x in r.latency if x.mode == "nonstream"}
    thr = {(x.target, x.concurrency): x for x in r.throughput}
    runs = [
        ("c=1 (latency)", _cpu_of(lat.get(PG)), _cpu_of(lat.get(FWD)), _cpu_of(lat.get(SQLITE))),
        (
            "c=32 (throughput)",
            _cpu_of(thr.get((PG, 32))),
            _cpu_of(thr.get((FWD, 32))),
            _cpu_of(thr.get((SQLITE, 32))),
        ),
    ]
    for label, (pg, pg_db), (fwd, _), (lite, _) in runs:
        if pg is None or fwd is None:
            continue
        ratio = pg / fwd if fwd else None
        out.append(
            Verdict(
                f"CPU/request, PostgreSQL, {label}",
                "<=1.5x forwarder's (gateway process)",
                f"{_f(pg)} ms = {_f(ratio, '.2f')}x fwd (+db {_f(pg_db)} ms)",
                f"fwd {_f(fwd)} ms; sqlite {_f(lite)} ms",
                _status(_ok(ratio, lambda v: v <= 1.5)),
            )
        )
    return out


def _apis(r: SuiteResults) -> list[Verdict]:
    """One line per Flywheel, mode and API other than chat: within 10% of chat's req/s and
    CPU per request at c=32, on the same Flywheel, in the same run."""
    chat = {(x.target, x.mode): x for x in r.apis if x.api == CHAT}
    low, high = 1 - TOLERANCE, 1 + TOLERANCE
    out = []
    for x in r.apis:
        base = chat.get((x.target, x.mode))
        if base is None or x.api == CHAT:
            continue
        out.append(
            Verdict(
                f"{x.api} vs chat, c=32, {x.mode}",
                f"{x.target}: >={low:g}x req/s, <={high:g}x CPU, 0 err",
                f"{_f(x.x_chat_rps, '.2f')}x req/s, {_f(x.x_chat_cpu, '.2f')}x CPU "
                f"({_f(x.cpu_us_per_request, '.0f')} us), {x.errors} err",
                f"chat {_f(base.rps, '.0f')} req/s, {_f(base.cpu_us_per_request, '.0f')} us, "
                f"{base.errors} err",
                _status(x.within_target),
            )
        )
    return out


def _recorder(r: SuiteResults) -> list[Verdict]:
    out = []
    floors = {"postgres": 10_000, "sqlite": 5_000}
    for m in r.micro:
        out.append(
            Verdict(
                f"recorder rows/s into {m.engine}",
                f">={floors[m.engine]:,} rows/s",
                f"{m.rows_per_s:,.0f} rows/s (store, batches of 500)",
                "; ".join(f"e2e {e.target} {e.rows_per_s:,.0f} rows/s" for e in r.e2e),
                _status(m.rows_per_s >= floors[m.engine]),
            )
        )
    for e in r.e2e:
        out.append(
            Verdict(
                "recorder lag, response -> row",
                f"{e.target}: p99<=1 s",
                f"p99 {e.lag_ms.p99:.0f} ms (max {e.lag_ms.max:.0f}, +-50 ms)",
                "",
                _status(_ok(e.lag_ms.p99, lambda v: v <= 1000)),
            )
        )
    return out


def _loss(r: SuiteResults) -> list[Verdict]:
    out = []
    for name in sorted({c.target for c in r.loss}):
        checks = [c for c in r.loss if c.target == name]
        bad = [f"{c.scenario} {c.rows}/{c.answered}" for c in checks if not c.ok]
        out.append(
            Verdict(
                "loss: rows == answered, every run",
                name,
                f"{len(checks) - len(bad)}/{len(checks)} runs equal"
                + (f"; off: {', '.join(bad)}" if bad else "")
                + f"; last {checks[-1].rows}/{checks[-1].answered}",
                "",
                _status(not bad),
            )
        )
    return out


def _memory(r: SuiteResults) -> list[Verdict]:
    out = []
    idle = r.rss.get("idle", {})
    for name in (PG, SQLITE):
        value = idle.get(name)
        if value is not None:
            peers = "; ".join(f"{n} {idle[n]:.0f}" for n in (FWD, PEER) if idle.get(n))
            out.append(
                Verdict(
                    "idle RSS per worker",
                    f"{name}: <=80 MB (76.3 MiB)",
                    f"{value:.1f} MiB",
                    peers + " MiB",
                    _status(value <= IDLE_LIMIT_MIB),
                )
            )
    for s in r.soaks:
        out.append(
            Verdict(
                f"RSS growth, soak {s.seconds:.0f}s at half load",
                f"{s.target}: slope <={SOAK_LIMIT_MIB_PER_MIN:g} MiB/min",
                f"{s.growth_mib_per_min:+.2f} MiB/min "
                f"(2nd half {s.growth_second_half_mib_per_min:+.2f}); "
                f"{s.rss_start_mib:.0f}->{s.rss_end_mib:.0f} MiB",
                f"{s.rate_achieved:.0f} req/s, {s.errors} err",
                _status(s.growth_mib_per_min <= SOAK_LIMIT_MIB_PER_MIN, s.errors == 0),
            )
        )
    d = r.db_down
    if d is not None:
        grew = d.rss_peak_mib - d.rss_before_mib
        out.append(
            Verdict(
                "RSS with the database down",
                f"{d.target}: +<={OUTAGE_LIMIT_MIB:g} MiB, answered, replayed",
                f"+{grew:.1f} MiB over {d.down_seconds:.0f}s down; {d.requests} ok {d.errors} err; "
                f"rows {d.rows_after_replay}/{d.answered} after replay",
                f"spool {d.spool_bytes_at_end / 1048576:.1f} MiB",
                _status(
                    grew <= OUTAGE_LIMIT_MIB,
                    d.errors == 0,
                    d.rows_after_replay == d.answered,
                    d.spool_files_left == 0,
                ),
            )
        )
    return out


def verdicts(r: SuiteResults) -> list[Verdict]:
    return [
        *_latency(r),
        *_throughput(r),
        *_streaming(r),
        *_cpu(r),
        *_apis(r),
        *_recorder(r),
        *_loss(r),
        *_memory(r),
    ]


def format_summary(rows: list[Verdict]) -> str:
    widths = [
        max(len(getattr(v, f)) for v in rows) if rows else 4 for f in ("what", "target", "measured")
    ]
    widths = [max(w, h) for w, h in zip(widths, (4, 6, 8), strict=True)]
    head = (
        f"{'what':<{widths[0]}} | {'target':<{widths[1]}} | {'measured':<{widths[2]}} | "
        "status | peers"
    )
    lines = [head, "-" * len(head)]
    for v in rows:
        lines.append(
            f"{v.what:<{widths[0]}} | {v.target:<{widths[1]}} | {v.measured:<{widths[2]}} | "
            f"{v.status:<6} | {v.peers}"
        )
    return "\n".join(lines)
