"""SHA-256 digests of bytes and of JSON values."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["files_sha256", "json_sha256", "sha256_hex"]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def json_sha256(value: Any) -> str:
    """The SHA-256 of ``value``'s canonical JSON: keys sorted, no spaces, ASCII.

    Indentation or key order in a file does not change it; any changed value does.
    Python writes each float as the shortest text that reads back to the same float,
    so a value read from JSON and written again gives the same digest.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return sha256_hex(text.encode("ascii"))


def files_sha256(paths) -> str:
    """One SHA-256 over the names and bytes of ``paths`` (sorted by name), read in blocks: a folder's digest."""
    from pathlib import Path

    digest = hashlib.sha256()
    for path in sorted((Path(p) for p in paths), key=lambda p: p.name):
        digest.update(path.name.encode("utf-8") + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
