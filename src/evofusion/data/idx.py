"""Reader and writer for the IDX format (LeCun et al., the MNIST / Fashion-MNIST file format).

An IDX file is a 4-byte magic number ``0x00 0x00 <type code> <ndim>``, then ``ndim`` big-endian
uint32 dimension sizes, then the array in C order, big-endian. Files may be gzipped; gzip is detected
from its magic bytes, so ``.gz`` names are not required. Only numpy is used (no torchvision).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from evofusion.errors import DataError

__all__ = ["read_idx", "read_idx_images", "read_idx_labels", "write_idx"]

# type code -> big-endian numpy dtype
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"IDX file {path} is a corrupt or truncated gzip archive ({exc}); download it again"
            ) from exc
    return raw


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (plain or gzipped) into a numpy array.

    Args:
        path: the file. Gzip compression is detected from the content.

    Returns:
        An array with the file's shape, in native byte order (``uint8`` for image and label files).

    Raises:
        DataError: the file cannot be read, has a bad magic number or unknown type code, or is
            shorter than its header says (the message names the file).
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(
            f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'}); expected an "
            "MNIST-style file such as train-images-idx3-ubyte[.gz]"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{code:02x} in the magic number")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: the header needs {header} bytes, the file has {len(raw)}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    if any(d == 0 for d in shape):
        raise DataError(f"{path}: the header gives shape {shape}, with an empty dimension; the file is corrupt")
    n_items = math.prod(shape)  # Python ints: a forged header cannot overflow to a small count
    expected = header + n_items * dtype.itemsize
    if len(raw) < expected:
        raise DataError(
            f"{path} is truncated: shape {shape} needs {expected} bytes, the file has {len(raw)}; "
            "download it again"
        )
    if len(raw) > expected:
        raise DataError(f"{path} has {len(raw) - expected} trailing bytes after shape {shape}; it is corrupt")
    arr = np.frombuffer(raw, dtype=dtype, count=n_items, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx_images(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an idx3 image file as ``(N, 1, H, W)`` uint8.

    Raises:
        DataError: the file is not a 3-D unsigned-byte IDX file, or is corrupt.
    """
    arr = read_idx(path)
    if arr.ndim != 3 or arr.dtype != np.uint8:
        raise DataError(f"{path}: expected 3-D uint8 images (idx3-ubyte), got {arr.ndim}-D {arr.dtype}")
    return arr[:, None, :, :]


def read_idx_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an idx1 label file as ``(N,)`` int64.

    Raises:
        DataError: the file is not a 1-D unsigned-byte IDX file, or is corrupt.
    """
    arr = read_idx(path)
    if arr.ndim != 1 or arr.dtype != np.uint8:
        raise DataError(f"{path}: expected 1-D uint8 labels (idx1-ubyte), got {arr.ndim}-D {arr.dtype}")
    return arr.astype(np.int64)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file; gzipped when ``path`` ends in ``.gz``.

    Used for tests and for exporting small data sets in the MNIST format.

    Raises:
        DataError: the array's dtype has no IDX type code.
    """
    path = Path(path)
    array = np.asarray(array)
    code = next(
        (c for c, dt in _IDX_DTYPES.items() if dt.newbyteorder("=") == array.dtype.newbyteorder("=")), None
    )
    if code is None:
        raise DataError(
            f"cannot write {array.dtype} to IDX; supported: uint8, int8, int16, int32, float32, float64"
        )
    payload = (
        bytes([0, 0, code, array.ndim])
        + np.asarray(array.shape, dtype=">u4").tobytes()
        + np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    )
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path
