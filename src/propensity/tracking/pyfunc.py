"""The MLflow ``pyfunc`` face of a bundle, logged as models-from-code (no pickle).

CRM bundle. Input: a DataFrame of feature rows (the columns ``build_features``
produces, as in the logged input example). Output: ``lead_id`` (when given),
``probability``, ``score``, ``tier`` and ``reasons``.

Flat-table bundle. Input: rows of the table the model was trained on (its columns,
without the target). Output: what ``propensity score --data FILE`` writes (the id
column when the model has one, ``probability``, ``score``, ``reasons``, ``notes``:
the row's values the model could not read), row order kept.

Loading through MLflow (``mlflow.pyfunc.load_model``, ``mlflow models serve``,
``spark_udf``) runs the logged entry file ``pyfunc_entry.py`` from the artifact
store, so whoever can write there can run code; ``LeadScorer.load("models:/...")``
reads only the bundle's JSON and LightGBM text (see its docstring). Either way the
bundle's digests are checked by :func:`~propensity.scoring.bundle.load_bundle`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import mlflow.pyfunc
import pandas as pd

from propensity.scoring.scorer import LeadScorer

__all__ = ["CRM_OUTPUT", "ENTRY_FILE", "PropensityPyfunc", "log_bundle_model"]

# The file MLflow logs as the model's code and runs when it loads the model.
ENTRY_FILE = Path(__file__).with_name("pyfunc_entry.py")
CRM_OUTPUT = ("lead_id", "probability", "score", "tier", "reasons")


class PropensityPyfunc(mlflow.pyfunc.PythonModel):
    scorer = None
    table = None

    def load_context(self, context) -> None:
        from propensity.tabular.bundle import TableBundle
        from propensity.tabular.bundle import load_any_bundle as load_bundle
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
        return out[list(CRM_OUTPUT)]


def log_bundle_model(mlflow, bundle_path: Path, registered_model: str | None, example,
                     output: pd.DataFrame | None = None, with_report: bool = False) -> dict:
    """Log the bundle at ``bundle_path`` as a models-from-code pyfunc in the active run.

    With ``registered_model`` the model is registered as a new version and given alias
    ``challenger``. The signature comes from ``example`` and ``output`` (the model's
    answer to it; computed through this pyfunc when not given). A bundle's ``report/``
    folder is logged with it only when ``with_report``. Returns the model URI and version.
    """
    from mlflow.models import infer_signature

    with tempfile.TemporaryDirectory() as tmp:
        ignore = None if with_report else shutil.ignore_patterns("report")
        staged = shutil.copytree(bundle_path, Path(tmp) / "bundle", ignore=ignore)  # logged as artifacts/bundle
        signature = None
        if example is not None:
            if output is None:
                model = PropensityPyfunc()
                model.load_context(type("Ctx", (), {"artifacts": {"bundle": str(staged)}})())
                output = model.predict(None, example)
            signature = infer_signature(example, output)
        info = mlflow.pyfunc.log_model(name="model", python_model=str(ENTRY_FILE), artifacts={"bundle": str(staged)},
                                       signature=signature, input_example=example,
                                       registered_model_name=registered_model)
    version = info.registered_model_version
    if registered_model and version is not None:
        mlflow.MlflowClient().set_registered_model_alias(registered_model, "challenger", str(version))
    return {"model_uri": info.model_uri, "version": version}
