"""Reading IDX files (the MNIST family's format), plain or gzip-compressed.

An IDX file is a 4-byte magic number — two zero bytes, a type code, the number of
dimensions — then one big-endian uint32 per dimension, then the values, big-endian, in
row-major order. Fashion-MNIST ships ``*-images-idx3-ubyte.gz`` (N×28×28 uint8) and
``*-labels-idx1-ubyte.gz`` (N uint8).

A file that cannot be read as a whole — wrong magic, a truncated payload, a damaged gzip
stream, trailing bytes — is refused with an :class:`IdxFormatError` naming the file and
what is wrong, because no single record of it can be trusted. Values that are merely out of
range are the data stage's business (it quarantines those records), so every IDX value type
is read, not only ``ubyte``.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from e2eai.errors import E2eaiError

IDX_TYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
"""IDX type code → numpy dtype (big-endian, as the format stores values)."""


class IdxFormatError(E2eaiError):
    """An IDX file that cannot be read as a whole (the message names the file)."""


@dataclass(frozen=True)
class IdxArray:
    """The values of one IDX file with where they came from."""

    path: Path
    values: np.ndarray
    type_code: int

    @property
    def records(self) -> int:
        return int(self.values.shape[0])


def _raw_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when it is gzip (by its magic bytes, not its name)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IdxFormatError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as exc:
        # A gzip stream cut short raises EOFError: the download or copy was incomplete.
        raise IdxFormatError(f"{path}: damaged or truncated gzip stream ({exc})") from exc


def read_idx(path: Path) -> IdxArray:
    """Read one IDX file (``.gz`` or plain) into an array of its declared shape."""
    path = Path(path)
    data = _raw_bytes(path)
    if len(data) < 4:
        raise IdxFormatError(f"{path}: {len(data)} bytes is too short for an IDX header")
    zero, type_code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or type_code not in IDX_TYPES or ndim == 0:
        raise IdxFormatError(
            f"{path}: not an IDX file (magic {data[:4].hex()}; expected 0000 then a type "
            f"code in {sorted(hex(c) for c in IDX_TYPES)} and at least one dimension)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxFormatError(f"{path}: truncated header ({len(data)} of {header} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_TYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(data) - header
    if payload < expected:
        record = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        whole = payload // record if record else 0
        raise IdxFormatError(
            f"{path}: truncated: the header declares {shape[0]} records of shape "
            f"{shape[1:]} ({expected} bytes) but the file holds {payload} bytes "
            f"({whole} whole records)"
        )
    if payload > expected:
        raise IdxFormatError(
            f"{path}: {payload - expected} bytes after the {shape[0]} records the header "
            "declares (two files concatenated, or a wrong header)"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return IdxArray(path=path, values=values.astype(dtype.newbyteorder("=")), type_code=type_code)


def write_idx(path: Path, values: np.ndarray, type_code: int = 0x08) -> Path:
    """Write ``values`` as an IDX file (gzip when the name ends in ``.gz``): for tests and
    for handing subsets to other tools in the format they expect."""
    dtype = np.dtype(IDX_TYPES[type_code])
    header = bytes([0, 0, type_code, values.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in values.shape
    )
    data = header + np.ascontiguousarray(values, dtype=dtype).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path
