"""Content-addressed raw snapshots: the exact bytes a run started from, with a manifest.

The snapshot id is the sha256 of the manifest's table hashes, so the same input always maps
to the same snapshot, and every model can name the data it came from.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pandas as pd

from e2eai.storage import ArtifactStore, sha256_bytes


@dataclass(frozen=True)
class SnapshotTable:
    name: str
    key: str
    rows: int
    columns: int
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Snapshot:
    id: str
    source: str
    created_at: str
    tables: tuple[SnapshotTable, ...]
    manifest_uri: str

    def table(self, name: str) -> SnapshotTable:
        return next(t for t in self.tables if t.name == name)


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    # Text columns stay text: the snapshot keeps what was read, before any coercion.
    frame.to_parquet(buffer, index=False, compression="zstd")
    return buffer.getvalue()


def write_snapshot(
    tables: Mapping[str, pd.DataFrame], source: str, store: ArtifactStore
) -> Snapshot:
    """Store every raw table as Parquet under ``snapshots/<id>/`` with a manifest.json.

    Idempotent: an existing snapshot with the same content is reused, not rewritten.
    """
    blobs = {name: _parquet_bytes(frame) for name, frame in tables.items()}
    hashes = {name: sha256_bytes(blob) for name, blob in blobs.items()}
    content = "\n".join(f"{name}:{hashes[name]}" for name in sorted(hashes))
    snapshot_id = hashlib.sha256(content.encode()).hexdigest()
    prefix = f"snapshots/{snapshot_id[:16]}"
    manifest_key = f"{prefix}/manifest.json"

    if store.exists(manifest_key):
        stored = json.loads(store.get_bytes(manifest_key))
        return Snapshot(
            id=stored["id"],
            source=stored["source"],
            created_at=stored["created_at"],
            tables=tuple(SnapshotTable(**t) for t in stored["tables"]),
            manifest_uri=store.uri(manifest_key),
        )

    written = []
    for name, blob in blobs.items():
        key = f"{prefix}/{name}.parquet"
        store.put_bytes(key, blob)
        frame = tables[name]
        written.append(
            SnapshotTable(name, key, len(frame), frame.shape[1], hashes[name], len(blob))
        )
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    manifest = {
        "id": snapshot_id,
        "source": source,
        "created_at": created_at,
        "tables": [asdict(t) for t in written],
    }
    # The manifest goes last: its presence means the snapshot is complete.
    store.put_bytes(manifest_key, json.dumps(manifest, indent=2).encode())
    return Snapshot(snapshot_id, source, created_at, tuple(written), store.uri(manifest_key))
