"""Nothing lost while the database is down: predictions wait in an append-only local spool.

``RecordWriter.write`` stores a batch of prediction records in the database; when the
database cannot be reached it appends them to a JSON-lines spool file instead (flushed and
fsynced before it returns), and keeps doing so while anything waits in the spool, so the
spool stays in order. ``drain`` (a background thread, with ``start``) moves spooled records
into the database oldest first; ``AppStore.add_predictions`` skips ids already stored, so a
drain interrupted by a crash or a new outage repeats nothing when it runs again.

Files: ``spool-<sequence>.jsonl`` (a new one per process start and every
``records_per_file`` records; deleted once all its records are stored) and
``rejected.jsonl`` (lines that could not be read back, e.g. the torn last line of a write
cut short by a crash, with the reason; kept for a person to look at).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

from e2eai.app.store import AppStore, DatabaseUnavailable, PredictionRecord
from e2eai.errors import E2eaiError
from e2eai.jsonable import to_jsonable

log = logging.getLogger(__name__)

SPOOL_PATTERN = "spool-*.jsonl"
REJECTED_FILE = "rejected.jsonl"
_LOCK_FILE = ".lock"
# Records per add_predictions call while draining.
DRAIN_BATCH = 500


class SpoolInUse(E2eaiError):
    """Another RecordWriter (another process, or one not yet closed) owns the spool directory."""


class RecordWriter:
    """Writes prediction records to ``store``, spooling them in ``spool_dir`` when it is down.

    Owns ``spool_dir`` (an exclusive lock: give every process its own directory). Records
    spooled by an earlier process that stopped are drained too.
    """

    def __init__(
        self,
        store: AppStore,
        spool_dir: Path,
        *,
        retry_seconds: float = 1.0,
        records_per_file: int = 10_000,
    ) -> None:
        self.store = store
        self.spool_dir = Path(spool_dir)
        self.retry_seconds = retry_seconds
        self.records_per_file = records_per_file
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._dir_lock = _lock_directory(self.spool_dir)
        self._lock = threading.Lock()  # the spool files, their counts, the active file
        self._drain_lock = threading.Lock()  # one drain at a time
        # Records still waiting in each spool file, and where the drain has got to in it.
        self._waiting: dict[Path, int] = {
            path: _count_lines(path) for path in sorted(self.spool_dir.glob(SPOOL_PATTERN))
        }
        self._drained_to: dict[Path, tuple[int, int]] = {}  # (byte offset, lines)
        # Never append to a file from before: its last line may be torn. Start a new one.
        self._next_sequence = max((_sequence(path) for path in self._waiting), default=0) + 1
        self._active: tuple[Path, int] | None = None  # (path, fd) appends go to
        self._rejected = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.depth:
            log.warning("%d prediction records wait in %s from before", self.depth, spool_dir)

    # -- writing -----------------------------------------------------------------------------

    def write(self, records: Sequence[PredictionRecord]) -> Literal["stored", "spooled"]:
        """Store ``records`` in the database, or spool them if it is down (or others wait)."""
        if not records:
            return "stored"
        with self._lock:
            if self._depth_locked():
                self._append_locked(records)
                return "spooled"
        try:
            self.store.add_predictions(records)
        except DatabaseUnavailable as exc:
            with self._lock:
                first = not self._depth_locked()
                self._append_locked(records)
            if first:
                log.warning("spooling prediction records in %s: %s", self.spool_dir, exc)
            return "spooled"
        return "stored"

    def spool(self, records: Sequence[PredictionRecord]) -> Literal["spooled"]:
        """Append ``records`` to the spool without trying the database (not migrated yet)."""
        with self._lock:
            self._append_locked(records)
        return "spooled"

    @property
    def depth(self) -> int:
        """Records waiting in the spool."""
        with self._lock:
            return self._depth_locked()

    @property
    def rejected(self) -> int:
        """Spool lines that could not be read back (set aside in ``rejected.jsonl``)."""
        return self._rejected

    # -- draining ----------------------------------------------------------------------------

    def drain(self) -> int:
        """Move spooled records into the database, oldest first; returns how many moved.

        Stops quietly (the rest stays spooled) when the database goes away again. A spool
        file is deleted only once every record in it is stored.
        """
        return self._drain(stopping=None)

    def _drain(self, stopping: threading.Event | None) -> int:
        moved = 0
        with self._drain_lock:
            if not self.depth or not self.store.ping():
                # Still down: keep appending to the current file rather than start a new one
                # on every retry of a long outage.
                return 0
            while stopping is None or not stopping.is_set():
                with self._lock:
                    self._seal_active_locked()  # new writes go to a new file meanwhile
                    files = sorted(self._waiting, key=_sequence)
                if not files:
                    break
                for path in files:
                    if stopping is not None and stopping.is_set():
                        return moved
                    try:
                        moved += self._drain_file(path)
                    except DatabaseUnavailable as exc:
                        log.info("spool drain paused (%d moved): %s", moved, exc)
                        return moved
        return moved

    def start(self) -> None:
        """Drain in a background thread every ``retry_seconds`` while the spool is non-empty."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="e2eai-spool-drain", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background drain (after the spool file it is draining, if any)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Stop draining, close the spool file and give up the spool directory."""
        self.stop()
        with self._lock:
            self._seal_active_locked()
        self._dir_lock.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.wait(self.retry_seconds):
            if not self.depth:
                continue
            try:
                self._drain(stopping=self._stop)
            except Exception:  # a disk error must not end draining for good
                log.exception("spool drain of %s failed; retrying", self.spool_dir)

    def _drain_file(self, path: Path) -> int:
        moved = 0
        with path.open("rb") as spool:
            offset, line_number = self._drained_to.get(path, (0, 0))
            spool.seek(offset)
            batch: list[PredictionRecord] = []
            rejects: list[tuple[int, str, bytes]] = []
            lines_in_batch = 0
            while True:
                line = spool.readline()
                if line:
                    line_number += 1
                    lines_in_batch += 1
                    try:
                        batch.append(_record_from_json(json.loads(line)))
                    except (ValueError, TypeError, KeyError) as exc:
                        rejects.append((line_number, _rejection_reason(line, exc), line))
                if lines_in_batch and (len(batch) >= DRAIN_BATCH or not line):
                    if batch:
                        self.store.add_predictions(batch)
                    # Set aside only once the batch is stored: a retry would reject again.
                    for rejected_line, reason, text in rejects:
                        self._reject(path, rejected_line, reason, text)
                    moved += len(batch)
                    with self._lock:
                        self._waiting[path] -= lines_in_batch
                        self._drained_to[path] = (spool.tell(), line_number)
                    batch, rejects, lines_in_batch = [], [], 0
                if not line:
                    break
        path.unlink()
        with self._lock:
            self._waiting.pop(path, None)
            self._drained_to.pop(path, None)
        return moved

    def _reject(self, path: Path, line_number: int, reason: str, line: bytes) -> None:
        entry = {
            "file": path.name,
            "line": line_number,
            "reason": reason,
            "text": line.decode("utf-8", errors="replace"),
        }
        _append_durably(self.spool_dir / REJECTED_FILE, (json.dumps(entry) + "\n").encode())
        self._rejected += 1
        log.error("spool %s line %d set aside in %s: %s", path, line_number, REJECTED_FILE, reason)

    # -- the spool files (called with self._lock held) ---------------------------------------

    def _depth_locked(self) -> int:
        return sum(self._waiting.values())

    def _append_locked(self, records: Sequence[PredictionRecord]) -> None:
        data = b"".join(
            (json.dumps(to_jsonable(asdict(record)), separators=(",", ":")) + "\n").encode()
            for record in records
        )
        if self._active is None or self._waiting[self._active[0]] >= self.records_per_file:
            self._seal_active_locked()
            self._active = self._open_new_file_locked()
        path, fd = self._active
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, start)  # leave no torn line behind a failed write
            raise
        self._waiting[path] += len(records)

    def _open_new_file_locked(self) -> tuple[Path, int]:
        path = self.spool_dir / f"spool-{self._next_sequence:012d}.jsonl"
        self._next_sequence += 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        _fsync_directory(self.spool_dir)  # the new file's name survives a crash too
        self._waiting[path] = 0
        return path, fd

    def _seal_active_locked(self) -> None:
        if self._active is not None:
            os.close(self._active[1])
            self._active = None


def _record_from_json(data: dict[str, Any]) -> PredictionRecord:
    created_at = datetime.fromisoformat(data["created_at"])
    if created_at.tzinfo is None:
        raise ValueError("created_at has no time zone")
    return PredictionRecord(
        id=str(data["id"]),
        request_id=str(data["request_id"]),
        created_at=created_at,
        task=str(data["task"]),
        model_name=str(data["model_name"]),
        model_version=str(data["model_version"]),
        slot=str(data["slot"]),
        request=dict(data["request"]),
        probability=float(data["probability"]),
        latency_ms=float(data["latency_ms"]),
        request_row=int(data.get("request_row", 0)),
        event_time=_optional_time(data.get("event_time")),
        features=_optional_object(data.get("features"), "features"),
        explanation=_optional_object(data.get("explanation"), "explanation"),
        predicted_class=None
        if data.get("predicted_class") is None
        else int(data["predicted_class"]),
        class_probabilities=None
        if data.get("class_probabilities") is None
        else [float(p) for p in data["class_probabilities"]],
    )


def _optional_time(value: Any) -> datetime | None:
    if value is None:
        return None
    at = datetime.fromisoformat(str(value))
    if at.tzinfo is None:
        raise ValueError("event_time has no time zone")
    return at


def _optional_object(value: Any, name: str) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise ValueError(f"{name} is not an object")


def _rejection_reason(line: bytes, exc: Exception) -> str:
    if not line.endswith(b"\n"):
        return "torn write: the spool file ends in the middle of a record"
    return f"unreadable record: {exc}"


def _lock_directory(directory: Path) -> IO[bytes]:
    handle = (directory / _LOCK_FILE).open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SpoolInUse(
            f"spool directory {directory} is in use by another RecordWriter: give each "
            "process its own spool directory (or close the other writer first)"
        ) from None
    return handle


def _count_lines(path: Path) -> int:
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _sequence(path: Path) -> int:
    return int(path.stem.removeprefix("spool-"))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _append_durably(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
