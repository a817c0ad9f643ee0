"""Read a gateway's `GET /metrics` over HTTP, parsed by prometheus-client's own parser."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass
class Scrape:
    text: str
    samples: list[Sample]
    families: set[str]  # every metric family named in the exposition, with or without samples

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples called `name` whose labels include `labels` (0 when none)."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def label_values(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}


async def scrape(base_url: str) -> Scrape:
    # A new connection each time: with several workers, any of them may answer.
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        session.get(f"{base_url}/metrics") as response,
    ):
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    families = list(text_string_to_metric_families(text))
    return Scrape(
        text=text,
        samples=[sample for family in families for sample in family.samples],
        families={family.name for family in families},
    )
