"""A check of a LightGBM text model's layout, made before LightGBM parses it.

LightGBM finds the trees at the byte offsets its ``tree_sizes`` line gives and
parses them in parallel without checking those offsets against the length of the
text: a truncated file, or one whose ``tree_sizes`` is wrong, makes it read past
the text and abort or crash the process (SIGABRT or SIGSEGV, no Python exception,
often printing unrelated memory). :func:`layout_problem` finds these two cases,
so they become an error. It is not a parser: other damage inside a tree can still
bring LightGBM down, which is why a bundle records the SHA-256 of its model file.
"""

from __future__ import annotations

import re

__all__ = ["layout_problem"]

_SIZES = re.compile(rb"^tree_sizes=(.*?)\r?$", re.M)
_END = b"end of trees"


def layout_problem(text: bytes) -> str | None:
    """What is wrong with the layout of the trees in ``text``, or ``None`` when they sit where LightGBM looks."""
    first = text.find(b"\nTree=")
    start = len(text) if first < 0 else first + 1
    sizes_line = _SIZES.search(text, 0, start)
    if sizes_line is None:  # LightGBM then reads the trees one after another, up to this line
        return None if b"\n" + _END in text else f"no '{_END.decode()}' line: the file is cut short"
    try:
        sizes = [int(s) for s in sizes_line.group(1).split()]
    except ValueError:
        sizes = [0]
    if sizes and min(sizes) <= 0:
        return "tree_sizes is not a list of positive whole numbers"
    if not sizes:  # a model without trees: nothing is read at an offset
        return None
    pos = start
    for i, size in enumerate(sizes):
        if pos >= len(text):
            return f"tree_sizes lists {len(sizes)} trees, the file ends after {i}: it is cut short"
        if not text.startswith(b"Tree=", pos):
            return f"tree {i} is not at byte {pos}, where tree_sizes puts it"
        pos += size
    if not text.startswith(_END, pos):
        return (f"the trees do not end at byte {pos}, where tree_sizes puts their end "
                "(the file is cut short or tree_sizes is wrong)")
    return None
