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

import numpy as np

from propensity.core.jit import compiled

__all__ = ["KZERO", "add_contributions", "tabulate"]

# LightGBM's kZeroThreshold (a float 1e-35): a dense row's value this close to 0 is read as 0.0
KZERO = float(np.float32(1e-35))


@compiled
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


@compiled
def add_contributions(x: np.ndarray, out: np.ndarray, lo: int, hi: int, tree_nodes: np.ndarray,
                      node_feat: np.ndarray, node_thr: np.ndarray, node_nan: np.ndarray, node_zero: np.ndarray,
                      node_cats: np.ndarray, cat_bits: np.ndarray, tree_feats: np.ndarray, feats: np.ndarray,
                      tree_table: np.ndarray, table: np.ndarray) -> None:
    """Adds every tree's looked-up contributions of rows ``lo <= r < hi`` of ``x`` into ``out``.

    Tree ``t``'s splits are ``tree_nodes[t]:tree_nodes[t + 1]`` (bit ``j`` of the
    index: its ``j``-th split sends the row left); its features are
    ``feats[tree_feats[t]:tree_feats[t + 1]]`` and its table starts at
    ``table[tree_table[t]]``, row-major ``(2**k, m)``. The decisions are
    LightGBM's (``Tree::NumericalDecision``/``CategoricalDecision``) on a dense
    row, whose values within ``KZERO`` of 0 LightGBM reads as 0.0: a split sends
    NaN by ``node_nan`` and such a zero by ``node_zero`` (1 left, 0 right: what
    ``missing_type``, ``default_left`` and the threshold make of them), other
    values by ``value <= node_thr``, or, where ``node_cats[j] < node_cats[j + 1]``
    (categorical), by the category bitset ``cat_bits[node_cats[j]:node_cats[j + 1]]``
    (the value truncated to an int; negative or beyond the bitset: right).
    """
    block = 256  # rows per pass over the trees: one tree's table stays in cache across the block
    idx = np.empty(block, dtype=np.int64)
    n_trees = len(tree_nodes) - 1
    for b0 in range(lo, hi, block):
        b1 = min(b0 + block, hi)
        for t in range(n_trees):
            n0 = tree_nodes[t]
            k = tree_nodes[t + 1] - n0
            idx[:] = 0
            for j in range(k):  # one split at a time over the block: its kind and threshold stay put
                node = n0 + j
                f = node_feat[node]
                bit = 1 << j
                c0 = node_cats[node]
                c1 = node_cats[node + 1]
                if c0 == c1:
                    thr = node_thr[node]
                    for r in range(b0, b1):
                        fv = x[r, f]
                        if fv != fv:
                            left = node_nan[node]
                        elif fv >= -KZERO and fv <= KZERO:
                            left = node_zero[node]
                        else:
                            left = 1 if fv <= thr else 0
                        idx[r - b0] |= left * bit
                else:
                    for r in range(b0, b1):
                        fv = x[r, f]
                        if fv > -1.0 and fv < 2147483648.0:  # NaN, negative or beyond int: right
                            c = int(fv)  # truncation toward zero, as C's static_cast<int>
                            w = c >> 5
                            if w < c1 - c0 and (cat_bits[c0 + w] >> (c & 31)) & 1:
                                idx[r - b0] |= bit
            f0 = tree_feats[t]
            m = tree_feats[t + 1] - f0
            base = tree_table[t]
            for r in range(b0, b1):
                at = base + idx[r - b0] * m
                for q in range(m):
                    out[r, feats[f0 + q]] += table[at + q]
