"""glibc's arenas capped in a worker (gateway/allocator.py): counted by malloc_info in a process
of its own, after eight threads allocated side by side."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from gateway import allocator

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

# Eight threads hold 100 KB blocks (malloc's, below its mmap threshold) at once, then the
# process prints how many heaps malloc_info lists: one per arena.
SCRIPT = textwrap.dedent(
    """
    import ctypes, os, sys, tempfile, threading
    from gateway import allocator
    if sys.argv[1] == "limited":
        allocator.limit_arenas()
    barrier = threading.Barrier(9)  # the threads and this one
    def hold():
        blocks = [bytearray(100_000) for _ in range(4)]
        barrier.wait()
        barrier.wait()
    threads = [threading.Thread(target=hold) for _ in range(8)]
    [t.start() for t in threads]
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    path = os.path.join(tempfile.mkdtemp(), "malloc.xml")
    stream = libc.fopen(path.encode(), b"w")
    barrier.wait()
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    barrier.wait()
    [t.join() for t in threads]
    print(open(path).read().count("<heap nr="))
    """
)


def arenas(mode: str, env: dict[str, str] | None = None) -> int:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_a_worker_keeps_two_arenas_however_many_threads_allocate() -> None:
    assert arenas("default") > allocator.ARENAS  # without the cap, threads take their own
    assert arenas("limited") <= allocator.ARENAS


@pytest.mark.parametrize(
    "setting", [{"MALLOC_ARENA_MAX": "4"}, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}]
)
def test_an_operators_arena_limit_is_left_as_set(setting: dict[str, str]) -> None:
    assert arenas("limited", setting) > allocator.ARENAS
