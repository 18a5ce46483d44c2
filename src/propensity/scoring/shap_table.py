"""Exact TreeSHAP for shallow LightGBM models by table look-up: each tree tabulated once, then per row a look-up.

Path-dependent TreeSHAP (LightGBM's ``pred_contrib``) reads a row only through
the row's outcome at each split: the Shapley value of a feature averages
``v(S)`` over coalitions ``S``, and ``v(S)`` walks the tree following the row at
every split on a feature in ``S`` -- including splits off the row's own path. So
a tree's contribution vector is a function of ALL its split outcomes (not of the
leaf alone: two rows in the same leaf can differ at a split off their path). A
tree with ``k <= MAX_SPLITS`` splits is therefore tabulated over its ``2**k``
outcome vectors (exact Shapley values over its few distinct features, see
``shap_kernels.py``), and a row costs ``k`` comparisons and one look-up per tree.

Used when every tree of a LightGBM booster has at most :data:`MAX_SPLITS`
splits (the shipped training: depth 3, at most 7) and is a plain constant-leaf
tree of a single-output model; numeric splits (``<=``, with LightGBM's missing
handling: ``missing_type`` None/Zero/NaN and ``default_left``) and categorical
splits (``==`` with a category bitset) are both reproduced as LightGBM decides
them on a dense float row. Everything else falls back to LightGBM's
``pred_contrib``: deeper trees, linear trees, multi-class or averaged
(random-forest) models, inputs other than a 2-D float NumPy array. The tables
of a booster are built on its first use and kept while it lives.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from propensity.core.native import LIGHTGBM, cores

__all__ = ["MAX_SPLITS", "ShapTable", "shap_table"]

MAX_SPLITS = 7  # a table of 2**7 outcome vectors, each over at most 2**7 coalitions: cheap at load
_MIN_ROWS_PER_THREAD = 2_048  # below this, one thread: starting others costs more than it saves

_DUMP_LIMIT = 1e300  # dump_model() writes thresholds beyond this as this

_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # booster -> ShapTable | None


@dataclass(frozen=True)
class ShapTable:
    """Every tree's splits (as flat arrays for the kernel) and table; see ``shap_kernels.add_contributions``."""

    n_features: int
    bias: float  # the sum of the trees' expected values: LightGBM's last pred_contrib column
    tree_nodes: np.ndarray
    node_feat: np.ndarray
    node_thr: np.ndarray
    node_nan: np.ndarray
    node_zero: np.ndarray
    node_cats: np.ndarray
    cat_bits: np.ndarray
    tree_feats: np.ndarray
    feats: np.ndarray
    tree_table: np.ndarray
    table: np.ndarray

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """``(rows, n_features + 1)``: per row each feature's log-odds, then the expected value."""
        from propensity.scoring.shap_kernels import add_contributions

        x = np.ascontiguousarray(x, dtype=np.float64)
        n = len(x)
        out = np.zeros((n, self.n_features + 1))
        args = (self.tree_nodes, self.node_feat, self.node_thr, self.node_nan, self.node_zero, self.node_cats,
                self.cat_bits, self.tree_feats, self.feats, self.tree_table, self.table)
        threads = min(cores(), max(n // _MIN_ROWS_PER_THREAD, 1))
        if threads == 1:
            add_contributions(x, out, 0, n, *args)
        else:
            from concurrent.futures import ThreadPoolExecutor

            bounds = np.linspace(0, n, threads + 1).astype(int)
            with ThreadPoolExecutor(threads) as pool:  # the kernel releases the GIL: one range per core
                list(pool.map(lambda i: add_contributions(x, out, int(bounds[i]), int(bounds[i + 1]), *args),
                              range(threads)))
        out[:, -1] = self.bias
        return out


def shap_table(booster: Any) -> ShapTable | None:
    """The booster's tables (built on first use, kept while it lives), or None where ``pred_contrib`` must serve."""
    try:
        return _TABLES[booster]
    except (KeyError, TypeError):  # TypeError: not weakly referenceable, so not a LightGBM Booster
        pass
    import lightgbm as lgb

    if not isinstance(booster, lgb.Booster):
        return None
    with LIGHTGBM:  # also makes threads that ask at once build the tables once
        if booster in _TABLES:
            return _TABLES[booster]
        # the iterations predict uses by default (best_iteration when set), in both forms
        built = _build(booster.dump_model(), booster.model_to_string)
        _TABLES[booster] = built
    return built


def _build(dump: dict, model_text: Callable[[], str] | None = None) -> ShapTable | None:
    """The tables of a ``dump_model()``; None when a tree or the model is outside what they reproduce.

    The dump writes a threshold beyond +-1e300 (e.g. the ``inf`` of a split that
    sends only missing values right) as +-1e300; such thresholds are read from the
    model text (``model_text()``, the same iterations), which keeps them exactly.
    """
    if dump.get("num_class", 1) != 1 or dump.get("num_tree_per_iteration", 1) != 1 or dump.get("average_output"):
        return None
    trees = [t["tree_structure"] for t in dump["tree_info"]]
    if any(t.get("num_leaves", 0) - 1 > MAX_SPLITS for t in dump["tree_info"]):
        return None
    from propensity.scoring.shap_kernels import tabulate

    n_features = dump["max_feature_idx"] + 1
    tree_nodes, node_feat, node_thr, node_nan, node_zero, node_cats = [0], [], [], [], [], [0]
    cat_bits: list[int] = []
    tree_feats, feats, tree_table, tables = [0], [], [0], []
    bias = 0.0
    exact: list[list[float]] | None = None
    for t, root in enumerate(trees):
        parsed = _parse(root)
        if parsed is None:
            return None
        splits, leaves = parsed
        k = len(splits)
        order = {id(n): i for i, n in enumerate(splits + leaves)}
        local: dict[int, int] = {}
        for s in splits:
            local.setdefault(int(s["split_feature"]), len(local))
        count = np.array([float(n["internal_count"] if "split_index" in n else n.get("leaf_count", 0))
                          for n in splits + leaves])
        if k and np.any(count[:k] <= 0):
            return None
        value = np.array([0.0] * k + [float(n["leaf_value"]) for n in leaves])
        bias += float(np.dot(count[k:], value[k:]) / count[0]) if k else float(value[0])
        if k:
            left = np.array([order[id(s["left_child"])] for s in splits], dtype=np.int64)
            right = np.array([order[id(s["right_child"])] for s in splits], dtype=np.int64)
            feat = np.array([local[int(s["split_feature"])] for s in splits], dtype=np.int64)
            tables.append(tabulate(k, len(local), left, right, feat, count, value).ravel())
        for s in splits:
            node_feat.append(int(s["split_feature"]))
            if s["decision_type"] == "==":
                cats = [int(c) for c in str(s["threshold"]).split("||")]
                words = np.zeros(max(cats) // 32 + 1, dtype=np.int64)
                for c in cats:
                    words[c >> 5] |= 1 << (c & 31)
                cat_bits.extend(int(w) for w in words)
                node_thr.append(0.0)
                node_nan.append(0)  # LightGBM: NaN goes right at a categorical split
                node_zero.append(int(0 in cats))  # 0.0 is category 0 (unused: the kernel reads the bitset)
            else:
                thr, missing, default = float(s["threshold"]), s["missing_type"], int(bool(s["default_left"]))
                if abs(thr) >= _DUMP_LIMIT:
                    if model_text is None:
                        return None
                    exact = exact if exact is not None else _text_thresholds(model_text())
                    thr = exact[t][int(s["split_index"])]
                node_thr.append(thr)
                # NaN: the default side where missing is NaN, else read as 0.0; 0.0: the default side where
                # missing is Zero, else compared with the threshold
                node_zero.append(default if missing == "Zero" else int(thr >= 0.0))
                node_nan.append(default if missing in ("NaN", "Zero") else int(thr >= 0.0))
            node_cats.append(len(cat_bits))
        feats.extend(sorted(local, key=local.__getitem__))
        tree_nodes.append(len(node_feat))
        tree_feats.append(len(feats))
        tree_table.append(tree_table[-1] + (1 << k) * len(local) if k else tree_table[-1])
    i64 = np.int64
    return ShapTable(
        n_features=n_features, bias=bias, tree_nodes=np.array(tree_nodes, dtype=i64),
        node_feat=np.array(node_feat, dtype=i64), node_thr=np.array(node_thr, dtype=np.float64),
        node_nan=np.array(node_nan, dtype=i64), node_zero=np.array(node_zero, dtype=i64),
        node_cats=np.array(node_cats, dtype=i64),
        cat_bits=np.array(cat_bits, dtype=i64), tree_feats=np.array(tree_feats, dtype=i64),
        feats=np.array(feats, dtype=i64), tree_table=np.array(tree_table[:-1], dtype=i64),
        table=np.concatenate(tables) if tables else np.zeros(0))


def _text_thresholds(text: str) -> list[list[float]]:
    """Each tree's ``threshold=`` line of a LightGBM model text, by split index (``inf`` kept as such)."""
    out: list[list[float]] = []
    for line in text.splitlines():
        if line.startswith("Tree="):
            out.append([])
        elif line.startswith("threshold=") and out:
            out[-1] = [float(v) for v in line[len("threshold="):].split()]
        elif line.startswith("end of trees"):
            break
    return out


def _parse(root: dict) -> tuple[list[dict], list[dict]] | None:
    """(splits, leaves) of a dumped tree, each parent before its children; None for a linear tree."""
    splits: list[dict] = []
    leaves: list[dict] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            if node["decision_type"] not in ("<=", "=="):
                return None
            splits.append(node)
            stack.extend((node["right_child"], node["left_child"]))
        else:
            if "leaf_coeff" in node or "leaf_const" in node:  # a linear tree's leaf: not a constant
                return None
            leaves.append(node)
    return splits, leaves
