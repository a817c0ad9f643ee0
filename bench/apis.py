"""Every API against chat: the Responses and Messages APIs through Flywheel, beside chat.

The issue's target: the Responses API (`POST /v1/responses`, relayed as bytes to the
`openai_compat` provider) and Anthropic's Messages API (`POST /v1/messages`, relayed as bytes to
the `anthropic` provider) within 10% of chat completions. All three reach the same fake upstream
(bench/fake_upstream.py), which answers each in its own wire format with the same text, usage
and, streamed, the same number of content events.

Per Flywheel and mode (whole answers, then streams): closed-loop load at concurrency 32, a
warm-up per API, then `rounds` blocks per API, the APIs interleaved (each round starting with the
next one) so slow drifts of the machine fall on all three alike. A streamed answer counts when it
is HTTP 200 and its last event is the API's own end (`[DONE]`, `response.completed`,
`message_stop`). CPU is Flywheel's process (and its PostgreSQL's) per answered request, from
/proc, as in bench/throughput.py.

Autovacuum is off while a PostgreSQL target is measured, and back on after. Left on, it ran
within one block, the same one every run as the row counts repeat, and with the server pinned to
Flywheel's core it took that API's req/s and CPU with it: vacuuming and analyzing `interactions`
at ~40,000 rows took ~1 s of CPU, charged to streamed Responses (160-530 µs of PostgreSQL CPU a
request against chat's 50-60; issue 20). Its cost per row is the same whatever the API, and the
other scenarios carry it. (Vacuuming between blocks instead left work for the server's writers
in every block.)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import asyncpg
import orjson

from bench.closed_loop import CLIENT_SATURATED, Call, LoadResult, closed_loop, is_json, pool
from bench.load import HEADERS, request_body
from bench.procs import cpu_seconds
from bench.targets import CHAT_PATH, Fleet, Target

CONCURRENCY = 32
MODES = ("nonstream", "stream")
CHAT = "chat"
SYSTEM = "You are a terse assistant."
PROMPT = "Say hello in one short sentence."
# The share of chat's figure an API may be off by: the "within 10%".
TOLERANCE = 0.10


def _ends_with(event_type: bytes) -> Callable[[bytes], bool]:
    """A stream's check: its last SSE event mentions `event_type` (`data: [DONE]` for chat;
    `event: <type>` and `"type":"<type>"` for the others)."""

    def accept(payload: bytes) -> bool:
        last = payload.rstrip(b"\n").rpartition(b"\n\n")[2]
        return event_type in last

    return accept


def responses_body(stream: bool) -> bytes:
    """Chat's request (bench/load.py) in the Responses API's shape."""
    body: dict[str, object] = {
        "model": "bench",
        "instructions": SYSTEM,
        "input": PROMPT,
        "max_output_tokens": 32,
        "temperature": 0,
    }
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


def messages_body(stream: bool) -> bytes:
    """Chat's request in Anthropic's Messages shape, to the model of the `anthropic` provider."""
    body: dict[str, object] = {
        "model": "bench-claude",
        "system": SYSTEM,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 32,
        "temperature": 0,
    }
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


# What Anthropic's SDK sends; with auth off Flywheel ignores the key, as it does chat's Bearer.
MESSAGES_HEADERS = {
    "Content-Type": "application/json",
    "x-api-key": "sk-bench",
    "anthropic-version": "2023-06-01",
}


@dataclass(frozen=True)
class Api:
    name: str
    path: str
    body: Callable[[bool], bytes]
    headers: dict[str, str]
    last_event: bytes

    def call(self, stream: bool, answered_as: str) -> Call:
        accept = _ends_with(self.last_event) if stream else is_json
        return Call(self.headers, accept, answered_as)


APIS = (
    Api(CHAT, CHAT_PATH, request_body, HEADERS, b"data: [DONE]"),
    Api("responses", "/v1/responses", responses_body, HEADERS, b"response.completed"),
    Api("messages", "/v1/messages", messages_body, MESSAGES_HEADERS, b"message_stop"),
)


@dataclass(frozen=True)
class ApiRow:
    """One line of the table (and of the JSON); `x_chat_*` are this API's figure over chat's on
    the same Flywheel and mode (None on chat's own line)."""

    target: str
    mode: str
    api: str
    requests: int
    errors: int
    error_examples: list[str]
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    db_cpu_us_per_request: float | None
    client_cpu_util: float
    x_chat_rps: float | None
    x_chat_p50: float | None
    x_chat_p99: float | None
    x_chat_cpu: float | None

    @property
    def within_target(self) -> bool | None:
        """req/s >= 0.9x and CPU/request <= 1.1x chat's, no errors; None on chat's own line or
        when chat itself got no answer to compare with."""
        if self.x_chat_rps is None:
            return None
        if self.errors or self.x_chat_cpu is None:
            return False
        return self.x_chat_rps >= 1 - TOLERANCE and self.x_chat_cpu <= 1 + TOLERANCE


@dataclass
class _Cell:
    load: LoadResult = field(default_factory=LoadResult)
    cpu_s: float = 0.0
    db_cpu_s: float = 0.0
    max_client_util: float = 0.0

    def per_request_us(self, seconds: float) -> float:
        return seconds * 1e6 / self.load.ok if self.load.ok else math.nan


def _cpu(target: Target) -> tuple[float, float]:
    db = cpu_seconds(target.db_pid, tree=True) if target.db_pid else 0.0
    return cpu_seconds(target.pid), db


@contextlib.asynccontextmanager
async def _autovacuum_paused(target: Target) -> AsyncIterator[None]:
    """A PostgreSQL target's server without autovacuum while its blocks run (see the module's
    docstring); SQLite's checkpoints run inside its commits, evenly. The server is the
    bench's own (pgserver), so the setting is ours to change."""
    if target.db_pid is None or target.db_url is None:
        yield
        return
    conn = await asyncpg.connect(target.db_url)
    try:
        await conn.execute("ALTER SYSTEM SET autovacuum = off")
        await conn.execute("SELECT pg_reload_conf()")
        yield
    finally:
        await conn.execute("ALTER SYSTEM RESET autovacuum")
        await conn.execute("SELECT pg_reload_conf()")
        await conn.close()


def _origin(target: Target) -> str:
    return target.url.removesuffix(CHAT_PATH)


async def _measure_one(
    target: Target, stream: bool, seconds: float, warmup: float, rounds: int
) -> dict[str, _Cell]:
    """Interleaved blocks of each API against one Flywheel in one mode."""
    # Every API's answers count under the Flywheel's chat URL: the loss check's key for it.
    calls = {api.name: api.call(stream, answered_as=target.url) for api in APIS}
    urls = {api.name: _origin(target) + api.path for api in APIS}
    bodies = {api.name: api.body(stream) for api in APIS}
    cells = {api.name: _Cell() for api in APIS}
    sessions = {api.name: pool(CONCURRENCY) for api in APIS}
    try:
        for name, session in sessions.items():
            await closed_loop(
                session, urls[name], bodies[name], CONCURRENCY, warmup, call=calls[name]
            )
        names = list(sessions)
        for round_no in range(rounds):
            # Each round starts one API later: what a block leaves behind (the recorder's last
            # batch, a checkpoint) does not always land on the same API's next block.
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                session = sessions[name]
                before = _cpu(target)
                block = await closed_loop(
                    session,
                    urls[name],
                    bodies[name],
                    CONCURRENCY,
                    seconds / rounds,
                    call=calls[name],
                )
                after = _cpu(target)
                cell = cells[name]
                cell.load.add(block)
                cell.cpu_s += after[0] - before[0]
                cell.db_cpu_s += after[1] - before[1]
                cell.max_client_util = max(cell.max_client_util, block.client_util)
    finally:
        for session in sessions.values():
            await session.close()
    return cells


def _ratio(value: float, base: float) -> float | None:
    if math.isnan(value) or math.isnan(base) or base == 0:
        return None
    return value / base


def _rows(target: str, mode: str, cells: dict[str, _Cell]) -> list[ApiRow]:
    chat = cells[CHAT]
    chat_s, chat_cpu = chat.load.summary(), chat.per_request_us(chat.cpu_s)
    rows = []
    for name, cell in cells.items():
        s, cpu = cell.load.summary(), cell.per_request_us(cell.cpu_s)
        own = name == CHAT
        rows.append(
            ApiRow(
                target=target,
                mode=mode,
                api=name,
                requests=cell.load.ok,
                errors=cell.load.errors,
                error_examples=cell.load.error_examples,
                rps=cell.load.rate,
                p50_ms=s.p50,
                p99_ms=s.p99,
                cpu_us_per_request=cpu,
                db_cpu_us_per_request=cell.per_request_us(cell.db_cpu_s) if cell.db_cpu_s else None,
                client_cpu_util=cell.max_client_util,
                x_chat_rps=None if own else _ratio(cell.load.rate, chat.load.rate),
                x_chat_p50=None if own else _ratio(s.p50, chat_s.p50),
                x_chat_p99=None if own else _ratio(s.p99, chat_s.p99),
                x_chat_cpu=None if own else _ratio(cpu, chat_cpu),
            )
        )
    return rows


async def measure_apis(
    fleet: Fleet, seconds: float, warmup: float = 0.5, rounds: int = 2
) -> list[ApiRow]:
    """`seconds` of measured load per Flywheel, mode and API, in `rounds` blocks each."""
    rows: list[ApiRow] = []
    for mode in MODES:
        for target in fleet.flywheels():
            async with _autovacuum_paused(target):
                cells = await _measure_one(target, mode == "stream", seconds, warmup, rounds)
            rows += _rows(target.name, mode, cells)
            print(f"  {mode}: {target.name} done", flush=True)
    return rows


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _verdict(row: ApiRow) -> str:
    ok = row.within_target
    return "" if ok is None else ("PASS" if ok else "MISS")


def format_apis(rows: list[ApiRow]) -> str:
    lines = [
        f"{'target':<18}{'mode':<10}{'api':<10}{'req/s':>8}{'err':>5}{'p50':>7}{'p99':>7}"
        f"{'cpu us':>8}{'db us':>7}{'client':>7} | {'x req/s':>7}{'x p50':>6}{'x p99':>6}"
        f"{'x cpu':>6}  10%"
    ]
    for r in rows:
        lines.append(
            f"{r.target:<18}{r.mode:<10}{r.api:<10}{_num(r.rps, 0):>8}{r.errors:>5}"
            f"{_num(r.p50_ms):>7}{_num(r.p99_ms):>7}{_num(r.cpu_us_per_request, 0):>8}"
            f"{_num(r.db_cpu_us_per_request, 0):>7}{_num(100 * r.client_cpu_util, 0) + '%':>7}"
            f" | {_num(r.x_chat_rps):>7}{_num(r.x_chat_p50):>6}{_num(r.x_chat_p99):>6}"
            f"{_num(r.x_chat_cpu):>6}  {_verdict(r)}"
        )
        for example in r.error_examples[:2]:
            lines.append(f"    error example: {example}")
    saturated = sorted(
        {f"{r.target}/{r.mode}" for r in rows if r.client_cpu_util >= CLIENT_SATURATED}
    )
    if saturated:
        lines.append(
            f"note: the client used >= {CLIENT_SATURATED:.0%} of its CPU for "
            f"{', '.join(saturated)}: there it may have set the pace, not the server."
        )
    lines.append(
        f"c={CONCURRENCY} closed loop through each Flywheel. req/s = answered 200s / wall time; "
        "p50/p99 = ms to the last byte; cpu us, db us = CPU microseconds per request of Flywheel's "
        "process and of its PostgreSQL; client = peak CPU share of the load generator; x ... = "
        "the API's figure over chat's on the same target and mode; 10% = req/s >= 0.9x and "
        "cpu <= 1.1x chat's with no errors (p50/p99 shown, not judged: the issue's latency rows "
        "are at c=1)."
    )
    return "\n".join(lines)
