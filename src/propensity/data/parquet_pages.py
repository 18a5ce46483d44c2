"""The dictionary indices of a Parquet text column, read from its pages without decoding the dictionary.

pandas writes a categorical column (the synthetic world's and many exports'
``lead_id``) with its whole dictionary, every lead id, repeated in each row group.
Arrow decodes and hashes that dictionary again for every row group it reads as a
``DictionaryArray``; a DuckDB join hashes every row. Here each column chunk's
dictionary page is kept as stored bytes and its data pages' RLE/bit-packed indices
are decoded with NumPy, so a dictionary repeated byte for byte is turned into
values (by Arrow, once) and matched against the leads once for the whole file.
Only what such chunks use is decoded: Thrift page headers, PLAIN dictionary pages,
RLE_DICTIONARY data pages v1 and v2 without nulls, codecs ``pyarrow.decompress``
knows; anything else returns ``None`` and the caller lets DuckDB or Arrow read the
column.

Why it is not a library call (kept only while at least 1.5x faster than the best
library path): ``python benchmarks/reading.py --data w1m --runs 4 --paths
package,duckdb-join,arrow-duckdb`` on the world of ``propensity generate --out w1m
--leads 1000000 --seed 0`` (45.1M activities in 44 row groups), 2026-12-05, 2 cores
shared with other jobs (load average 3-5), four alternating rounds: the activities
file to arrays took 2.52-2.78 s (CPU 2.54-2.79 s) with these pages, against
5.57-9.12 s (CPU 5.50-5.78 s) for the fastest library path, DuckDB joins, and
9.05-17.83 s for Arrow dictionaries with DuckDB's times: 2.0x or more in every
pairing. The other library paths and ``read_export`` end to end: docs/scaling.md.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

__all__ = ["DictionaryIndices", "chunk_indices", "flat_column"]


class DictionaryIndices:
    """The dictionary indices of one text column, row group by row group, decoded from the Parquet pages.

    Each distinct dictionary page is read once by Arrow, which gives its values and
    checks the decoder (Arrow's indices of that row group must be the same numbers);
    ``prepare(dictionary)`` is kept for the row groups that repeat the page
    byte for byte. ``meta``: the file's ``pyarrow.parquet.FileMetaData``;
    ``column`` is None when ``name`` is not a flat text column (nothing to decode).
    Thread-safe.
    """

    def __init__(self, path: Path, meta, name: str, prepare) -> None:
        self.path, self.meta, self.name, self.prepare = path, meta, name, prepare
        self.column = flat_column(meta, name)
        self.lock = threading.Lock()
        self.known: list[tuple[bytes, object]] = []  # (dictionary page, prepared), the last two

    def indices(self, rg: int) -> tuple[object, np.ndarray] | None:
        """(prepared dictionary, uint32 index of each row) of row group ``rg``; None if it cannot be decoded."""
        got = chunk_indices(self.path, self.meta, rg, self.column)
        if got is None:
            return None
        page, size, idx = got
        with self.lock:  # one thread reads a new dictionary, the other waits for it
            value = next((v for p, v in self.known if p == page), None)
            if value is None:
                value = self._learn(rg, size, idx)
                if value is None:
                    return None
                self.known = self.known[-1:] + [(page, value)]
        return value, idx

    def _learn(self, rg: int, size: int, idx: np.ndarray) -> object | None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        col = pq.ParquetFile(self.path, read_dictionary=[self.name]).read_row_group(rg, columns=[self.name])
        col = col.column(0)
        if col.num_chunks != 1:
            return None
        chunk = col.chunk(0)
        if (not pa.types.is_dictionary(chunk.type) or chunk.null_count or len(chunk.dictionary) != size
                or not np.array_equal(np.asarray(chunk.indices), idx)):
            return None
        return self.prepare(chunk.dictionary)


_CODECS = {"UNCOMPRESSED": None, "SNAPPY": "snappy", "GZIP": "gzip", "ZSTD": "zstd", "BROTLI": "brotli",
           "LZ4_RAW": "lz4_raw"}  # Parquet codec -> pyarrow.decompress name (Hadoop-framed LZ4: not here)


def flat_column(meta, name: str) -> int | None:
    """The leaf index of top-level column ``name`` (optional or required, not repeated), else None."""
    for i in range(meta.num_columns):
        col = meta.schema.column(i)
        if col.path == name:
            ok = col.max_repetition_level == 0 and col.max_definition_level <= 1 and col.physical_type == "BYTE_ARRAY"
            return i if ok else None
    return None


def chunk_indices(path: Path, meta, rg: int, column: int) -> tuple[bytes, int, np.ndarray] | None:
    """(dictionary page as stored, dictionary size, uint32 dictionary index of each row) of one column chunk.

    ``None`` unless the chunk is one dictionary page then RLE_DICTIONARY data pages
    (v1 or v2) without nulls, compressed by a codec ``pyarrow.decompress`` knows.
    """
    cm = meta.row_group(rg).column(column)
    if cm.file_path or not cm.has_dictionary_page or cm.compression not in _CODECS:
        return None
    try:
        with open(path, "rb") as f:
            f.seek(cm.dictionary_page_offset)
            raw = f.read(cm.total_compressed_size)
        return _decode_chunk(raw, _CODECS[cm.compression], meta.row_group(rg).num_rows,
                             meta.schema.column(column).max_definition_level)
    except Exception:  # noqa: BLE001 - unexpected or malformed pages: the caller lets Arrow or DuckDB read them
        return None


def _decode_chunk(raw: bytes, codec: str | None, num_rows: int, max_def: int) -> tuple[bytes, int, np.ndarray] | None:
    import pyarrow as pa

    pos, end = 0, len(raw)
    page = None
    size = 0
    streams: list[tuple[bytes, int, int]] = []  # (page values, where the indices start, how many)
    while pos < end:
        head, body = _thrift_struct(raw, pos)
        kind, usize, stop = head.get(1), head.get(2), body + head.get(3, -1)
        if stop > end or stop < body or usize is None:
            return None
        if kind == 2:  # the dictionary page: PLAIN values
            info = head.get(7) or {}
            if page is not None or streams or info.get(2) not in (0, 2) or info.get(1) is None:
                return None
            page, size = raw[pos:stop], info[1]
        elif kind == 0:  # data page v1: [definition levels (RLE, length-prefixed)] values, all compressed
            info = head.get(5) or {}
            if page is None or info.get(2) not in (2, 8) or info.get(1) is None:
                return None
            data = raw[body:stop] if codec is None else pa.decompress(raw[body:stop], usize, codec=codec, asbytes=True)
            at = 0
            if max_def:
                levels = int.from_bytes(data[:4], "little")
                if info.get(3) != 3 or not _all_present(data[4:4 + levels], max_def, info[1]):
                    return None
                at = 4 + levels
            streams.append((data, at, info[1]))
        elif kind == 3:  # data page v2: levels uncompressed up front, then the values (maybe compressed)
            info = head.get(8) or {}
            if page is None or info.get(4) not in (2, 8) or info.get(2) != 0 or info.get(1) is None:
                return None
            levels = info.get(5, 0) + info.get(6, 0)
            data = raw[body + levels:stop]
            if codec is not None and info.get(7, True):
                data = pa.decompress(data, usize - levels, codec=codec, asbytes=True)
            streams.append((data, 0, info[1]))
        elif kind != 1:  # index pages carry nothing to decode
            return None
        pos = stop
    if page is None or not streams or sum(k for _, _, k in streams) != num_rows:
        return None
    idx = _hybrid_pages(streams)
    if idx is None or len(idx) != num_rows or (num_rows and int(idx.max()) >= size):
        return None
    return page, size, idx


def _all_present(levels: bytes, max_def: int, n: int) -> bool:
    """Whether v1 definition levels are one RLE run of ``n`` times ``max_def`` (no nulls)."""
    header, pos = _varint(levels, 0)
    width = (max_def.bit_length() + 7) >> 3
    return (not header & 1 and header >> 1 == n and pos + width == len(levels)
            and int.from_bytes(levels[pos:pos + width], "little") == max_def)


def _hybrid_pages(streams: list[tuple[bytes, int, int]]) -> np.ndarray | None:
    """The values of RLE/bit-packed hybrid streams (each: a bit-width byte, then runs), concatenated.

    The run headers are walked in Python (one step per run); everything else is
    vectorised over the whole chunk.
    """
    widths = {data[at] for data, at, _ in streams}
    if len(widths) != 1:
        return None
    bw = widths.pop()
    counts_per_page = np.array([k for _, _, k in streams], dtype=np.int64)
    if bw == 0:
        return np.zeros(int(counts_per_page.sum()), dtype=np.uint32)
    if bw > 32:
        return None
    buf = b"".join(data[at + 1:] for data, at, _ in streams)
    vbytes = (bw + 7) >> 3
    step = [0 if h & 0x80 else 1 + ((h >> 1) * bw if h & 1 else vbytes) for h in range(256)]
    heads: list[int] = []
    longs: list[tuple[int, int, int]] = []  # (run, header, header bytes) of multi-byte headers
    firsts = []
    pos = 0
    for data, at, _ in streams:
        firsts.append(len(heads))
        stop = pos + len(data) - at - 1
        if not _walk_runs(buf, pos, stop, step, bw, heads, longs) or len(heads) == firsts[-1]:
            return None
        pos = stop
    data = np.frombuffer(buf, dtype=np.uint8)
    at = np.array(heads, dtype=np.int64)
    head = data[at].astype(np.int64)
    hlen = np.ones(len(at), dtype=np.int64)
    for i, h, k in longs:
        head[i], hlen[i] = h, k
    lit = (head & 1).astype(bool)
    counts = np.where(lit, (head >> 1) * 8, head >> 1)
    firsts = np.array(firsts, dtype=np.int64)
    per_page = np.add.reduceat(counts, firsts)
    last = counts[np.r_[firsts[1:], len(counts)] - 1]
    if (per_page < counts_per_page).any() or (per_page - last >= counts_per_page).any():
        return None  # each page's runs must end in its last run (bit-packed runs pad to 8)
    body = at + hlen
    if lit.any():
        starts, stops = body[lit].tolist(), (body[lit] + (head[lit] >> 1) * bw).tolist()
        packed = np.frombuffer(b"".join([buf[a:b] for a, b in zip(starts, stops, strict=True)]), dtype=np.uint8)
        values = _unpack(packed, bw)
    if lit.all():
        out = values
    else:
        rle = body[~lit]
        value = np.zeros(len(rle), dtype=np.uint32)
        for k in range(vbytes):
            value |= data[rle + k].astype(np.uint32) << np.uint32(8 * k)
        run_value = np.zeros(len(at), dtype=np.uint32)
        run_value[~lit] = value
        out = np.repeat(run_value, counts)
        if lit.any():
            out[np.repeat(lit, counts)] = values
    excess = per_page - counts_per_page
    if excess.any():  # padding of each page's last bit-packed run
        keep = np.ones(len(out), dtype=bool)
        for stop, extra in zip(np.cumsum(per_page).tolist(), excess.tolist(), strict=True):
            keep[stop - extra:stop] = False
        out = out[keep]
    return out


def _walk_runs(buf: bytes, pos: int, end: int, step: list[int], bw: int, heads: list[int],
               longs: list[tuple[int, int, int]]) -> bool:
    """Append the position of each run header in ``buf[pos:end]``; False unless the runs end exactly at ``end``.

    ``step[h]``: the length of a run whose one-byte header is ``h`` (0: a longer header).
    """
    append = heads.append
    vbytes = (bw + 7) >> 3
    while pos < end:
        s = step[buf[pos]]
        append(pos)
        if s:
            pos += s
        else:
            header, after = _varint(buf, pos)
            longs.append((len(heads) - 1, header, after - pos))
            pos = after + ((header >> 1) * bw if header & 1 else vbytes)
    return pos == end


def _unpack(packed: np.ndarray, bw: int) -> np.ndarray:
    """Bit-unpack groups of 8 ``bw``-bit values (least significant bit first) from uint8 ``packed``.

    Value j of each group starts at the same bit of the group's ``bw`` bytes, so
    each of the 8 is a few shifted byte columns.
    """
    groups = len(packed) // bw
    g = packed[:groups * bw].reshape(groups, bw)
    out = np.empty((groups, 8), dtype=np.uint32)
    mask = np.uint64((1 << bw) - 1)
    for j in range(8):
        byte, shift = (j * bw) >> 3, (j * bw) & 7
        acc = g[:, byte].astype(np.uint64)
        for k in range(1, (shift + bw + 7) >> 3):
            acc |= g[:, byte + k].astype(np.uint64) << np.uint64(8 * k)
        out[:, j] = (acc >> np.uint64(shift)) & mask
    return out.reshape(-1)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 varint at ``pos``: (value, position after it)."""
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _thrift_struct(buf: bytes, pos: int) -> tuple[dict, int]:
    """A Thrift compact-protocol struct (a page header): {field id: value}, nested structs as dicts."""
    fields: dict[int, object] = {}
    last = 0
    while True:
        head = buf[pos]
        pos += 1
        if head == 0:
            return fields, pos
        kind, delta = head & 0x0F, head >> 4
        if delta:
            last += delta
        else:
            zz, pos = _varint(buf, pos)
            last = (zz >> 1) ^ -(zz & 1)
        fields[last], pos = _thrift_value(buf, pos, kind)


def _thrift_value(buf: bytes, pos: int, kind: int) -> tuple[object, int]:
    if kind in (1, 2):  # booleans live in the type nibble
        return kind == 1, pos
    if kind == 3:
        return buf[pos], pos + 1
    if kind in (4, 5, 6):  # zigzag varints
        zz, pos = _varint(buf, pos)
        return (zz >> 1) ^ -(zz & 1), pos
    if kind == 7:
        return None, pos + 8
    if kind == 8:
        size, pos = _varint(buf, pos)
        return buf[pos:pos + size], pos + size
    if kind in (9, 10):  # list / set: skipped
        head = buf[pos]
        pos += 1
        size, elem = head >> 4, head & 0x0F
        if size == 15:
            size, pos = _varint(buf, pos)
        for _ in range(size):
            pos = pos + 1 if elem in (1, 2) else _thrift_value(buf, pos, elem)[1]
        return None, pos
    if kind == 11:  # map: skipped
        size, pos = _varint(buf, pos)
        if size:
            types = buf[pos]
            pos += 1
            for _ in range(size):
                pos = _thrift_value(buf, pos, types >> 4)[1]
                pos = _thrift_value(buf, pos, types & 0x0F)[1]
        return None, pos
    if kind == 12:
        return _thrift_struct(buf, pos)
    raise ValueError(f"unknown Thrift type {kind}")
