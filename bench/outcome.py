"""Everything one suite run measured, gathered in one place for the summary and the JSON file."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.apis import ApiRow
from bench.memory import DbDown, Soak
from bench.recorder_bench import EndToEnd, Micro
from bench.report import Row as LatencyRow
from bench.rows import LossCheck
from bench.streaming import StreamRow
from bench.throughput import Row as ThroughputRow


@dataclass
class SuiteResults:
    latency: list[LatencyRow] = field(default_factory=list)
    throughput: list[ThroughputRow] = field(default_factory=list)
    streaming: list[StreamRow] = field(default_factory=list)
    e2e: list[EndToEnd] = field(default_factory=list)
    micro: list[Micro] = field(default_factory=list)
    loss: list[LossCheck] = field(default_factory=list)
    rss: dict[str, dict[str, float | None]] = field(default_factory=dict)
    soaks: list[Soak] = field(default_factory=list)
    db_down: DbDown | None = None
    apis: list[ApiRow] = field(default_factory=list)
