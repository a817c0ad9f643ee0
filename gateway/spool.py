"""The recorder's durable overflow: append-only JSON-lines segment files on local disk.

Rows go here when the store is down, slow, or the in-memory queue is full, and are replayed in
order as soon as the store answers again. Replays are exactly-once because the store ignores ids
it already has. Files are segments named by a sequence number: the writer appends to the newest,
replay reads the older ones in order and deletes each once stored. Every segment in use is held
with an exclusive `flock`, so several workers can share one spool folder without replaying the
same segment twice, and a worker that died leaves segments the others pick up.

Writes are buffered `write`s into the page cache, cheap enough for the event loop; the fsync
that makes them crash-proof is the caller's, on a thread. Reading a segment for replay blocks:
callers iterate `Segment.batches` on a thread.

Rows the store refused even after repair go to `dead-letter/` in the same line format: once the
cause is fixed, moving a file back into the spool folder replays it. Spool lines that cannot be
read at all are kept there too, as `*.undecodable`, byte for byte.

Privacy (gateway/privacy/): `purge` removes a forgotten person's lines from every segment not in
use and from the dead letters, rewriting each file whole (a new file renamed over the old one,
so a crash leaves the old file or the new one, never half of each); `expire` deletes files
older than the retention. Rows reach this folder already redacted when `capture.redact` asks.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from gateway.records.interaction import COLUMNS, Interaction
from gateway.storable import make_storable

log = logging.getLogger(__name__)

_SUFFIX = ".jsonl"
DEAD_LETTER_DIR = "dead-letter"


def encode(interaction: Interaction) -> bytes:
    try:
        return orjson.dumps(dict(zip(COLUMNS, interaction.as_row(), strict=True))) + b"\n"
    except orjson.JSONEncodeError:  # a lone surrogate, a 65-bit number, 255 levels deep...
        make_storable(interaction)
        return orjson.dumps(dict(zip(COLUMNS, interaction.as_row(), strict=True))) + b"\n"


def decode(line: bytes) -> Interaction:
    fields: dict[str, Any] = orjson.loads(line)
    fields["created_at"] = datetime.fromisoformat(fields["created_at"])
    return Interaction(**fields)


class Spool:
    def __init__(self, folder: str | os.PathLike[str], max_segment_bytes: int = 64 << 20):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_segment_bytes = max_segment_bytes
        self._file: IO[bytes] | None = None
        self._path: Path | None = None

    # -- writing ---------------------------------------------------------------------------
    def write(self, rows: Sequence[Interaction]) -> int | None:
        """Append rows (one buffered `write`) and return the file descriptor to fsync.

        Once written the rows survive the process being killed; `os.fsync` on the returned
        descriptor makes them survive the machine going down too. None: already synced,
        because the segment reached its size limit and was sealed.
        """
        handle = self._current()
        handle.write(b"".join(encode(row) for row in rows))
        handle.flush()
        if handle.tell() >= self.max_segment_bytes:  # bounded segments: replay reads one at a time
            os.fsync(handle.fileno())
            self.seal()
            return None
        return handle.fileno()

    def append(self, rows: Sequence[Interaction]) -> None:
        """Write and fsync, blocking; for shutdown, when nothing else runs."""
        fileno = self.write(rows)
        if fileno is not None:
            os.fsync(fileno)

    def _current(self) -> IO[bytes]:
        if self._file is None:
            # Nanosecond time plus pid: unique across workers, and sorts in write order.
            self._path = self.folder / f"{time.time_ns():020d}-{os.getpid()}{_SUFFIX}"
            self._file = open(self._path, "ab")  # noqa: SIM115 - kept open across calls
            fcntl.flock(self._file, fcntl.LOCK_EX)
        return self._file

    def seal(self) -> None:
        """Close the current segment so that it can be replayed; new rows start a new one."""
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()  # a closed file's data is kept by the OS, synced or not
            self._file = None
            self._path = None

    # -- replaying -------------------------------------------------------------------------
    def pending(self) -> bool:
        """Whether any segment exists other than the one being written (cheap: a listdir)."""
        return any(p != self._path for p in self.folder.glob(f"*{_SUFFIX}"))

    def segments(self) -> Iterator[Segment]:
        """Sealed segments, oldest first, each locked for the caller; skips those in use."""
        for path in sorted(self.folder.glob(f"*{_SUFFIX}")):
            if path == self._path:
                continue
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed by Segment
            except FileNotFoundError:
                continue  # another worker replayed it meanwhile
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            if not _same_file(handle, path):  # replayed and deleted, or purged and replaced,
                handle.close()  # between our open and our lock
                continue
            yield Segment(path, handle)

    # -- dead letters -----------------------------------------------------------------------
    def dead_letter(self, rows: Sequence[Interaction]) -> Path:
        """Keep rows the store refused (fsynced; blocking, but this is rare)."""
        return self._keep(_SUFFIX, b"".join(encode(row) for row in rows))

    def dead_letter_lines(self, lines: Sequence[bytes]) -> Path:
        return self._keep(".undecodable", b"".join(lines))

    def _keep(self, suffix: str, data: bytes) -> Path:
        folder = self.folder / DEAD_LETTER_DIR
        folder.mkdir(exist_ok=True)
        path = folder / f"{time.time_ns():020d}-{os.getpid()}{suffix}"
        with open(path, "ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return path

    # -- privacy ---------------------------------------------------------------------------
    def purge(self, unwanted: Callable[[bytes], bool]) -> PurgeResult:
        """Remove the lines `unwanted` picks from the sealed segments not in use (each under
        its lock) and from the dead letters. Blocking: call it on a thread."""
        result = PurgeResult()
        visited = set()
        for segment in self.segments():
            visited.add(segment.path)
            try:
                result.add(_rewrite(segment.path, segment.lines(), unwanted))
            finally:
                segment.release()
        result.in_use = sum(1 for p in self.folder.glob(f"*{_SUFFIX}") if p not in visited)
        for path in sorted((self.folder / DEAD_LETTER_DIR).glob("*")):
            if path.suffix in (_SUFFIX, ".undecodable"):
                with open(path, "rb") as handle:
                    lines = handle.readlines()
                result.add(_rewrite(path, lines, unwanted))
        return result

    def expire(self, older_than: float) -> int:
        """Delete segments not in use, and dead letters, last written more than `older_than`
        seconds ago: the retention of interactions applies here too. Blocking."""
        cutoff = time.time() - older_than
        removed = 0
        for segment in self.segments():
            if segment.path.stat().st_mtime < cutoff:
                segment.done()
                removed += 1
            else:
                segment.release()
        for path in (self.folder / DEAD_LETTER_DIR).glob("*"):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def close(self) -> None:
        self.seal()


@dataclass
class PurgeResult:
    rows_removed: int = 0
    files_rewritten: int = 0
    # Segments left as they were because a worker holds them (its open one, or one it is
    # replaying): the recorder drops forgotten rows when it writes or replays them.
    in_use: int = 0

    def add(self, removed: int) -> None:
        self.rows_removed += removed
        self.files_rewritten += bool(removed)


def _rewrite(path: Path, lines: Sequence[bytes], unwanted: Callable[[bytes], bool]) -> int:
    """Write `path` again without the unwanted lines (deleted if none is left); how many went."""
    kept = [line for line in lines if not unwanted(line)]
    removed = len(lines) - len(kept)
    if not removed:
        return 0
    if not kept:
        path.unlink(missing_ok=True)
        return removed
    temporary = path.with_name(path.name + ".purging")  # no .jsonl suffix: never replayed
    with open(temporary, "wb") as handle:
        handle.write(b"".join(kept))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return removed


def _same_file(handle: IO[bytes], path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


class Segment:
    """One sealed, locked spool file being replayed."""

    def __init__(self, path: Path, handle: IO[bytes]):
        self.path = path
        self._handle = handle
        self.undecodable: list[bytes] = []  # lines skipped by `batches`, for the dead letters

    def batches(self, size: int) -> Iterator[list[Interaction]]:
        batch: list[Interaction] = []
        for number, line in enumerate(self._handle, start=1):
            if not line.endswith(b"\n"):
                # A torn last line: the process died mid-write. Everything before it is whole.
                log.warning("spool %s: ignoring torn line %d", self.path.name, number)
                break
            try:
                batch.append(decode(line))
            except (ValueError, TypeError, KeyError) as exc:  # damaged on disk, or by hand
                log.error("spool %s: line %d unreadable (%s)", self.path.name, number, exc)
                self.undecodable.append(line)
                continue
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def lines(self) -> list[bytes]:
        self._handle.seek(0)
        return self._handle.readlines()

    def done(self) -> None:
        """Every row is stored: delete the file (under our lock, so nobody replays it again)."""
        self.path.unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
