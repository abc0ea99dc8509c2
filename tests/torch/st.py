"""st.py — a numpy-only safetensors reader and writer for the Python cross-checks.

Format (huggingface/safetensors): 8-byte little-endian header length L, L bytes of JSON
{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then
the raw little-endian tensor data. Reads F32, F64, F16, I64, I32, U8 and BOOL; writes
whatever numpy dtype of those it is given (float32 in practice).
"""
import json
import os
import struct

import numpy as np

_DTYPES = {
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def _read_header(f, path):
    raw = f.read(8)
    if len(raw) != 8:
        raise ValueError(f"{path}: truncated: no header length")
    (n,) = struct.unpack("<Q", raw)
    size = os.fstat(f.fileno()).st_size
    if n > size - 8:
        raise ValueError(f"{path}: truncated: header of {n} bytes, file has {size - 8}")
    header = json.loads(f.read(n).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError(f"{path}: corrupt header: not an object")
    return header, 8 + n, size


def metadata(path):
    """The __metadata__ dict of the file ({} when absent)."""
    with open(path, "rb") as f:
        header, _, _ = _read_header(f, path)
    return dict(header.get("__metadata__", {}))


def load(path):
    """Every tensor of the file as a dict name -> numpy array (native-endian copies), in
    file order of the header."""
    with open(path, "rb") as f:
        header, start, size = _read_header(f, path)
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = _DTYPES.get(info["dtype"])
        if dt is None:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        shape = tuple(int(d) for d in info["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if end > len(data) or end - begin != count * dt.itemsize:
            raise ValueError(f"{path}: tensor {name}: bad data_offsets {begin}, {end}")
        arr = np.frombuffer(data, dtype=dt, count=count, offset=begin).reshape(shape)
        out[name] = arr.astype(dt.newbyteorder("="), copy=True)
    return out


def save(path, tensors, meta=None):
    """Writes tensors (dict name -> array, in dict order) and optional string metadata to
    path atomically (temporary file, fsync, rename)."""
    header = {}
    if meta:
        header["__metadata__"] = {str(k): str(v) for k, v in meta.items()}
    blobs = []
    offset = 0
    for name, arr in tensors.items():
        a = np.asarray(arr, order="C")
        dt = a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype
        if dt not in _NAMES:
            raise ValueError(f"tensor {name}: unsupported dtype {a.dtype}")
        b = a.astype(dt, copy=False).tobytes()
        header[name] = {"dtype": _NAMES[dt], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
