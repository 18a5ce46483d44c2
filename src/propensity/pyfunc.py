"""The MLflow ``pyfunc`` face of a bundle, logged as models-from-code (no pickle).

Input: a DataFrame of feature rows (the columns ``build_features`` produces, as in
the logged input example). Output: ``lead_id`` (when given), ``probability``,
``score``, ``tier`` and ``reasons``.
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd

from propensity.scoring.scorer import LeadScorer

__all__ = ["PropensityPyfunc"]


class PropensityPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.scorer = LeadScorer.load(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        frame = model_input.copy()
        if "lead_id" not in frame.columns:
            frame["lead_id"] = [str(i) for i in range(len(frame))]
        out = self.scorer.score_features(frame)
        return out[["lead_id", "probability", "score", "tier", "reasons"]]
