"""SHA-256 digests of bytes and of JSON values."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["json_sha256", "sha256_hex"]


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
