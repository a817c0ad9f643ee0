"""Python's garbage collector, set for a process that allocates many short-lived objects: a
gateway worker, an export and its workers.

Nearly all of those objects are freed by reference counting, yet at Python's default (700)
the youngest generation was collected every request or two, and every few hundred examples of
an export, each collection walking the objects alive at the time (issue 20: markedly more CPU
per request; issue 21: 5,194 collections, 4.3 s of a 56 s export of 200,000 rows, then 106
collections, 0.09 s). Cycles are still collected, some thousands of requests or examples
apart. A gateway worker's RSS under load measured the same; that export peaked 4 MiB higher
(118 -> 122 MiB).
"""

from __future__ import annotations

import gc

THRESHOLDS = (20_000, 50, 100)


def settle() -> None:
    """Collect once, move everything alive out of the collector's reach for good (modules, a
    price table, in an export worker the name lists: a full collection no longer walks them),
    and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
