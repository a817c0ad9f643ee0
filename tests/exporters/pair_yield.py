"""Pairs per 100 judged interactions, and turns given weight 0, on `traffic.cases()`:
`python -m tests.exporters.pair_yield`.

Seeds a fresh SQLite store, runs the `dpo` and `openai` exports and prints the figures. Run it
with another checkout first on PYTHONPATH to compare two versions on the same traffic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import tempfile
from pathlib import Path

from exporters.formats import FormatOptions
from exporters.run import ExportRequest, run_export
from exporters.selection import Filters
from gateway.config import AnonymizeConfig
from gateway.store import open_store
from tests.exporters.seed import seed
from tests.exporters.traffic import OVERRIDING, cases, judged


async def main() -> None:
    traffic = cases()
    options = FormatOptions()
    if "system_prompt_variants" in {f.name for f in dataclasses.fields(FormatOptions)}:
        options = FormatOptions(system_prompt_variants=OVERRIDING)  # type: ignore[call-arg]
    with tempfile.TemporaryDirectory() as folder:
        async with open_store(f"sqlite:///{folder}/yield.db") as store:
            await store.migrate()
            await seed(store, traffic)
            request = ExportRequest("dpo", Filters(), options)
            manifest = await run_export(store, AnonymizeConfig(), request, Path(folder) / "dpo")
            request = ExportRequest("openai", Filters(), options)
            sft = await run_export(store, AnonymizeConfig(), request, Path(folder) / "openai")
    counts = manifest["counts"]
    n_judged = sum(judged(case) for case in traffic.values())
    users = len({fields["user"] for fields, _ in traffic.values()})
    written = counts["records_written"]
    print(f"{len(traffic)} requests from {users} users, {n_judged} judged")
    print(f"pairs written: {written} = {100 * written / n_judged:.1f} per 100 judged")
    for key in ("pairs_built", "held_for_pairing", "held_never_paired"):
        if key in counts:
            print(f"{key}: {counts[key]}")
    print(f"dpo invalid: {counts['dropped_by_reason']['invalid']}")
    sft_counts = sft["counts"]
    print(
        f"openai: {sft_counts['records_written']} examples,"
        f" turns given weight 0: {sft_counts.get('turns_zero_weighted', 'not counted')}"
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
