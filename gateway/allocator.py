"""glibc's malloc, set for a gateway worker that lives for weeks (elsewhere, nothing changes).

- **Two arenas.** glibc gives each thread that allocates an arena of its own, up to eight per
  core, and each keeps the memory freed in it. A worker runs several threads (the SQLite
  store's, the spool's fsyncs, DNS lookups, the console's readers): with SQLite, its RSS after
  the bench's throughput and soak scenarios was 1.0 and 3.3 MiB lower with two arenas, in two
  pairs of runs (issue 20: its target is 80 MB). Two, not one: with one, the store's thread,
  which allocates while the event loop does, would wait on the loop's lock. An arena limit
  the operator set (`MALLOC_ARENA_MAX`, `GLIBC_TUNABLES=glibc.malloc.arena_max=N`) is left as
  it is.
- **Free pages given back after startup** (`give_back_free_memory`): startup parses litellm's
  whole price table (3.4 MB of JSON, ~13 MB of objects at its peak) to keep 1 MB of it; glibc
  kept the freed pages, and the worker's RSS stayed ~4 MB higher for its whole life.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

ARENAS = 2
# mallopt's parameter number for the arena limit, from glibc's malloc.h.
_M_ARENA_MAX = -8


def limit_arenas() -> None:
    """Cap glibc's arenas at `ARENAS`; call it before the worker starts threads."""
    if "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return  # the operator's choice
    mallopt = _libc_function("mallopt")
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, ARENAS)


def give_back_free_memory() -> None:
    """Return the allocator's free pages to the OS (glibc's malloc_trim)."""
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)


def _libc_function(name: str) -> Callable[..., int] | None:
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):  # not glibc: musl has no malloc_trim
        return None
    return function
