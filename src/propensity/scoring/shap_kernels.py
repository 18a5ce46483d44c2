"""Compiled (Numba) kernels of the tabulated TreeSHAP: a small tree's table, and the rows' lookups.

Imported only when a table is built (see ``shap_table.py``). ``cache=True`` keeps
the machine code beside this file (or in Numba's user cache directory), so only
the first run after an install compiles.

A tree with ``k`` splits is tabulated over its ``2**k`` split-outcome vectors
``d`` (bit ``j`` set: split ``j`` sends the row left), each entry holding the
exact Shapley values, over the tree's ``m`` distinct features, of the
path-dependent expectation ``v(S)``: walk down the tree, following ``d`` at a
split on a feature in ``S`` and averaging both children by their training counts
elsewhere. This is the quantity TreeSHAP computes in polynomial time, so an entry
is what LightGBM's ``pred_contrib`` gives any row with those outcomes.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["KZERO", "add_contributions", "tabulate"]

# LightGBM's kZeroThreshold (a float 1e-35): a dense row's value this close to 0 is read as 0.0
KZERO = float(np.float32(1e-35))


def _compiled(fn):
    """``njit(nogil=True)`` with Numba's on-disk cache where it can keep one, else compiled in each process."""
    try:
        return nb.njit(cache=True, nogil=True)(fn)
    except RuntimeError:
        return nb.njit(nogil=True)(fn)


@_compiled
def tabulate(k: int, m: int, left: np.ndarray, right: np.ndarray, feat: np.ndarray, count: np.ndarray,
             value: np.ndarray) -> np.ndarray:
    """The ``(2**k, m)`` table of one tree.

    Nodes are numbered parent before children: ``0..k-1`` the splits, then the
    leaves; ``left``/``right`` give a split's children, ``feat`` its feature
    (``0..m-1``, local to the tree), ``count`` every node's training rows and
    ``value`` every leaf's output (splits' entries unused).
    """
    n_nodes = len(count)
    n_sets = 1 << m
    weight = np.empty(m)  # Shapley weight of a coalition of s other features: s! (m - s - 1)! / m!
    for s in range(m):
        weight[s] = math.exp(math.lgamma(s + 1) + math.lgamma(m - s) - math.lgamma(m + 1))
    table = np.zeros((1 << k, m))
    v = np.empty(n_sets)
    val = np.empty(n_nodes)
    for d in range(1 << k):
        for s_mask in range(n_sets):
            for node in range(n_nodes - 1, -1, -1):  # children after parents: bottom-up
                if node >= k:
                    val[node] = value[node]
                elif (s_mask >> feat[node]) & 1:
                    val[node] = val[left[node]] if (d >> node) & 1 else val[right[node]]
                else:
                    c = count[node]
                    val[node] = (count[left[node]] * val[left[node]] + count[right[node]] * val[right[node]]) / c
            v[s_mask] = val[0]
        for i in range(m):
            bit = 1 << i
            phi = 0.0
            for s_mask in range(n_sets):
                if s_mask & bit:
                    continue
                size = 0
                rest = s_mask
                while rest:
                    size += rest & 1
                    rest >>= 1
                phi += weight[size] * (v[s_mask | bit] - v[s_mask])
            table[d, i] = phi
    return table


@_compiled
def _goes_left(fv: float, kind: int, thr: float, cat_bits: np.ndarray, c0: int, c1: int) -> bool:
    """LightGBM's decision at one split for a dense row's value ``fv`` (see :func:`add_contributions`)."""
    if kind == 8:
        if math.isnan(fv) or fv <= -1.0 or fv >= 2147483648.0:  # NaN, negative or out of int: right
            return False
        c = int(fv)  # truncation toward zero, as C's static_cast<int>
        w = c >> 5
        return w < c1 - c0 and (cat_bits[c0 + w] >> (c & 31)) & 1 == 1
    missing = kind & 3
    if math.isnan(fv):
        if missing == 2:
            return kind & 4 != 0
        fv = 0.0
    if fv >= -KZERO and fv <= KZERO:  # a dense row's (near) zero is no entry: read as 0.0
        fv = 0.0
        if missing == 1:
            return kind & 4 != 0
    return fv <= thr


@_compiled
def add_contributions(x: np.ndarray, out: np.ndarray, lo: int, hi: int, tree_nodes: np.ndarray,
                      node_feat: np.ndarray, node_thr: np.ndarray, node_kind: np.ndarray, node_cats: np.ndarray,
                      cat_bits: np.ndarray, tree_feats: np.ndarray, feats: np.ndarray, tree_table: np.ndarray,
                      table: np.ndarray) -> None:
    """Adds every tree's looked-up contributions of rows ``lo <= r < hi`` of ``x`` into ``out``.

    Tree ``t``'s splits are ``tree_nodes[t]:tree_nodes[t + 1]`` (bit ``j`` of the
    index: its ``j``-th split sends the row left); its features are
    ``feats[tree_feats[t]:tree_feats[t + 1]]`` and its table starts at
    ``table[tree_table[t]]``, row-major ``(2**k, m)``. ``node_kind``: 0 numeric
    (missing None), 1 numeric with missing Zero, 2 numeric with missing NaN, each
    plus 4 when the default direction is left; 8 categorical, whose categories
    are the bits of ``cat_bits[node_cats[j]:node_cats[j + 1]]``. The decisions are
    LightGBM's (``Tree::NumericalDecision``/``CategoricalDecision``) on a dense row.
    """
    block = 256  # rows per pass over the trees: one tree's table stays in cache across the block
    n_trees = len(tree_nodes) - 1
    for b0 in range(lo, hi, block):
        b1 = min(b0 + block, hi)
        for t in range(n_trees):
            n0 = tree_nodes[t]
            k = tree_nodes[t + 1] - n0
            f0 = tree_feats[t]
            m = tree_feats[t + 1] - f0
            base = tree_table[t]
            for r in range(b0, b1):
                idx = 0
                for j in range(k):
                    node = n0 + j
                    if _goes_left(x[r, node_feat[node]], node_kind[node], node_thr[node], cat_bits,
                                  node_cats[node], node_cats[node + 1]):
                        idx |= 1 << j
                at = base + idx * m
                for q in range(m):
                    out[r, feats[f0 + q]] += table[at + q]
