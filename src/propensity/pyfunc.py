"""The MLflow ``pyfunc`` face of a bundle, logged as models-from-code (no pickle).

CRM bundle. Input: a DataFrame of feature rows (the columns ``build_features``
produces, as in the logged input example). Output: ``lead_id`` (when given),
``probability``, ``score``, ``tier`` and ``reasons``.

Flat-table bundle. Input: rows of the table the model was trained on (its columns,
without the target). Output: what ``propensity score --data FILE`` writes (the id
column when the model has one, ``probability``, ``score``, ``reasons``, ``notes``:
the row's values the model could not read), row order kept.

Loading through MLflow (``mlflow.pyfunc.load_model``, ``mlflow models serve``,
``spark_udf``) runs the logged entry file ``_pyfunc_entry.py`` from the artifact
store, so whoever can write there can run code; ``LeadScorer.load("models:/...")``
reads only the bundle's JSON and LightGBM text (see its docstring). Either way the
bundle's digests are checked by :func:`~propensity.scoring.bundle.load_bundle`.
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd

from propensity.scoring.scorer import LeadScorer

__all__ = ["PropensityPyfunc"]


class PropensityPyfunc(mlflow.pyfunc.PythonModel):
    scorer = None
    table = None

    def load_context(self, context) -> None:
        from propensity.tabular.bundle import TableBundle, load_any_bundle as load_bundle
        from propensity.tabular.scorer import TableScorer

        bundle = load_bundle(context.artifacts["bundle"])
        if isinstance(bundle, TableBundle):
            self.table = TableScorer(bundle)
        else:
            self.scorer = LeadScorer(bundle)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if self.table is not None:
            return self.table.score(pd.DataFrame(model_input), source="the model input")
        frame = model_input.copy()
        if "lead_id" not in frame.columns:
            frame["lead_id"] = [str(i) for i in range(len(frame))]
        out = self.scorer.score_features(frame)
        return out[["lead_id", "probability", "score", "tier", "reasons"]]
