"""Scoring a flat table with a :class:`~propensity.tabular.bundle.TableBundle`."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from propensity.core.errors import BundleError
from propensity.scoring.bundle_files import BundleKindError, resolve_bundle_uri
from propensity.scoring.predictions import contributions, probabilities
from propensity.tabular.bundle import TableBundle, load_table_bundle
from propensity.tabular.matrix import check_table_columns, checked_table_matrix
from propensity.tabular.schema import column_width
from propensity.tabular.values import row_notes, warning_text

__all__ = ["TableScorer"]


class TableScorer:
    """Scores a flat table with a :class:`~propensity.tabular.bundle.TableBundle`.

    Output keeps the input's row order: the id column (when the model has one),
    ``probability`` (calibrated), ``score`` (0–100), ``reasons`` (the top
    input columns by exact SHAP log-odds, signed, per source column) and ``notes``
    (the row's values the model could not read, each treated as missing; ``""``
    when none).
    """

    def __init__(self, bundle: TableBundle):
        self.bundle = bundle
        self._source = [c.name for c in bundle.schema.columns for _ in range(column_width(c))]

    @classmethod
    def load(cls, uri: str | Path) -> TableScorer:
        """Load a flat-table bundle from a folder or an MLflow URI; the same checks and trust boundary as
        :meth:`propensity.scoring.scorer.LeadScorer.load` (only JSON and LightGBM text are read, digests
        verified first)."""
        try:
            return cls(load_table_bundle(resolve_bundle_uri(uri)))
        except BundleKindError:
            raise BundleError(f"{uri}: a CRM model bundle; score it with a CRM export folder") from None

    def predict(self, df: pd.DataFrame, source: str = "the table") -> np.ndarray:
        """Calibrated probabilities, in row order; one warning per column with values it cannot read."""
        check_table_columns(df, self.bundle.schema, source)
        x, found = checked_table_matrix(df, self.bundle.schema)
        for u in found:
            warnings.warn(warning_text(u, len(df), source), UserWarning, stacklevel=2)
        return probabilities(self.bundle.booster, self.bundle.calibrator, x)

    def score(self, df: pd.DataFrame, source: str = "the table", reasons: bool = True) -> pd.DataFrame:
        """The scores table (see the class docstring), with ``notes`` naming each row's unreadable values.

        A value the trained kind of its column cannot read (``"49 yrs"`` for a
        number, ``"maybe"`` for yes/no) is scored as missing, noted on its row and
        counted in one warning per column.
        """
        check_table_columns(df, self.bundle.schema, source)
        x, found = checked_table_matrix(df, self.bundle.schema)
        for u in found:
            warnings.warn(warning_text(u, len(df), source) + "; see the notes column", UserWarning, stacklevel=2)
        b = self.bundle
        out = pd.DataFrame(index=range(len(df)))
        id_col = b.schema.id_column
        if id_col:
            out[id_col] = df[id_col].to_numpy()
        if reasons and len(df):
            contrib = contributions(b.booster, x, x.shape[1])
            p = b.calibrator(1.0 / (1.0 + np.exp(-contrib.sum(axis=1))))
            out["probability"] = p
            out["score"] = np.rint(p * 100).astype(int)
            out["reasons"] = self._reasons(df, contrib[:, :-1])
        else:
            p = probabilities(b.booster, b.calibrator, x) if len(df) else np.array([])
            out["probability"] = p
            out["score"] = np.rint(p * 100).astype(int)
        out["notes"] = row_notes(found, len(df))
        return out

    def _reasons(self, df: pd.DataFrame, contrib: np.ndarray) -> list[str]:
        names = list(dict.fromkeys(self._source))
        per = np.zeros((len(contrib), len(names)))
        pos = {n: i for i, n in enumerate(names)}
        for j, src in enumerate(self._source):
            per[:, pos[src]] += contrib[:, j]
        k = self.bundle.top_k
        values = {n: df[n].astype(object).to_numpy() for n in names}
        for c in self.bundle.schema.columns:
            if c.kind == "text":  # free text: one short line, no reason separator inside
                values[c.name] = np.array([_short_text(v) for v in values[c.name]], dtype=object)
        out = []
        for i in range(len(per)):
            order = np.argsort(-np.abs(per[i]), kind="stable")[:k]
            out.append(" | ".join(f"{names[j]}={values[names[j]][i]!s} ({per[i, j]:+.2f} log-odds)"
                                  for j in order if abs(per[i, j]) > 1e-9))
        return out


def _short_text(v: object, width: int = 40) -> object:
    if not isinstance(v, str) and pd.isna(v):
        return v
    text = " ".join(str(v).split()).replace("|", "/")
    return text if len(text) <= width else text[: width - 1] + "…"
