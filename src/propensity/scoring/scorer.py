"""The scorer a service imports: probabilities, 0–100 scores, tiers and reasons.

>>> from propensity import LeadScorer                      # doctest: +SKIP
>>> scorer = LeadScorer.load("models/latest")                # doctest: +SKIP
>>> scorer.score("crm_export/")                             # doctest: +SKIP

Importing this module pulls in NumPy, pandas and LightGBM, not MLflow, SHAP or
matplotlib; MLflow is imported only to resolve a ``models:/`` or ``runs:/`` URI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from propensity.data.export import CrmExport, read_export
from propensity.features.cutoffs import scoring_cutoffs
from propensity.features.matrix import to_matrix
from propensity.features.pipeline import build_features
from propensity.scoring.bundle import Bundle, BundleError, load_bundle
from propensity.scoring.reasons import Reason, ReasonGroups, describe, probability_points

__all__ = ["LeadInput", "LeadScore", "LeadScorer", "ReasonOut"]


class LeadInput(BaseModel):
    """One lead as a service holds it: the lead row, its account row and its events."""

    model_config = ConfigDict(extra="forbid")

    lead: dict[str, Any]
    account: dict[str, Any] | None = None
    activities: list[dict[str, Any]] = Field(default_factory=list)


class ReasonOut(BaseModel):
    source: str
    display: str
    value: str
    points: float
    family: str
    actionable: bool
    text: str


class LeadScore(BaseModel):
    lead_id: str
    probability: float
    score: int
    tier: str
    positive: list[ReasonOut]
    negative: list[ReasonOut]


def _resolve(uri: str | Path) -> Path:
    text = str(uri)
    if text.startswith(("models:/", "runs:/", "mlflow-artifacts:/")):
        import mlflow  # lazy: only a service that loads from the registry pays for it

        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=text))
        found = sorted(local.rglob("bundle.json"))
        if found:
            return found[0].parent
        raise BundleError(f"{text}: the MLflow artifact holds no propensity bundle")
    return Path(uri)


class LeadScorer:
    """Scores leads with a trained bundle. Stateless after loading: safe across threads."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self._groups = ReasonGroups.from_spec(bundle.spec)

    @classmethod
    def load(cls, uri: str | Path) -> LeadScorer:
        """Load from a bundle folder, or an MLflow ``models:/NAME@alias`` / ``runs:/`` URI."""
        return cls(load_bundle(_resolve(uri)))

    # ------------------------------------------------------------------ inputs

    def _export(self, data: Any) -> CrmExport:
        if isinstance(data, CrmExport):
            return data
        if isinstance(data, (str, Path)):
            return read_export(data)
        if isinstance(data, dict):
            return CrmExport.from_frames(data)
        raise TypeError(f"cannot score {type(data).__name__}; pass a CRM export folder, a dict of DataFrames "
                        "keyed accounts/leads/activities, or a LeadInput")

    @staticmethod
    def _one_lead_frames(lead: LeadInput) -> dict[str, pd.DataFrame]:
        lead_row = dict(lead.lead)
        account = dict(lead.account or {})
        if "account_id" not in lead_row:
            lead_row["account_id"] = account.get("account_id", "__none__")
        if account and "account_id" not in account:
            account["account_id"] = lead_row["account_id"]
        acts = pd.DataFrame(lead.activities, columns=None if lead.activities else
                            ["lead_id", "activity_type", "occurred_at"])
        if len(acts) and "lead_id" not in acts.columns:
            acts["lead_id"] = lead_row.get("lead_id")
        return {"leads": pd.DataFrame([lead_row]),
                "accounts": pd.DataFrame([account] if account else [], columns=None if account else ["account_id"]),
                "activities": acts}

    # ----------------------------------------------------------------- scoring

    def score(self, data: Any, as_of: pd.Timestamp | str | None = None) -> pd.DataFrame | LeadScore:
        """Score every open lead in ``data`` as of ``as_of`` (default: the end of the data).

        ``data`` is a CRM export folder, a dict of DataFrames keyed ``accounts``,
        ``leads``, ``activities`` (``opportunities`` optional), or one lead (a
        :class:`LeadInput` or a dict with keys ``lead``, ``account``, ``activities``),
        for which a :class:`LeadScore` is returned instead of a DataFrame.
        Only events before ``as_of`` (occurred and recorded) are used.
        """
        if isinstance(data, dict) and "lead" in data:
            data = LeadInput.model_validate(data)
        if isinstance(data, LeadInput):
            export = CrmExport.from_frames(self._one_lead_frames(data), source="<lead>")
            cut = scoring_cutoffs(export, None if as_of is None else _utc(as_of))
            if cut.empty:
                raise ValueError(f"lead {data.lead.get('lead_id')!r} cannot be scored as of {as_of}: "
                                 "it was created after that time or already has an opportunity")
            result = self._score_cutoffs(export, cut, detail=True)
            row = result.iloc[0]
            return LeadScore(lead_id=row["lead_id"], probability=row["probability"], score=row["score"],
                             tier=row["tier"], positive=row["positive"], negative=row["negative"])
        export = self._export(data)
        ts = None if as_of is None else _utc(as_of)
        cut = scoring_cutoffs(export, ts)
        return self._score_cutoffs(export, cut, detail=False)

    def score_chunks(self, data: Any, as_of: pd.Timestamp | str | None = None, chunk_size: int = 50_000):
        """Score the open leads of ``data`` in chunks of ``chunk_size`` leads.

        Yields ``(n_leads_total, DataFrame)`` pairs; the chunks together equal
        :meth:`score` on the same data, in the same order.
        """
        export = self._export(data)
        cut = scoring_cutoffs(export, None if as_of is None else _utc(as_of))
        for start in range(0, max(len(cut), 1), chunk_size):
            part = cut.iloc[start:start + chunk_size].reset_index(drop=True)
            yield len(cut), self._score_cutoffs(export, part, detail=False)

    def explain(self, data: Any, lead_id: str, as_of: pd.Timestamp | str | None = None) -> LeadScore:
        """Score one lead of an export and return its full explanation."""
        export = self._export(data)
        cut = scoring_cutoffs(export, None if as_of is None else _utc(as_of))
        cut = cut[cut["lead_id"] == str(lead_id)].reset_index(drop=True)
        if cut.empty:
            known = export.leads["lead_id"].eq(str(lead_id)).any()
            why = "it already has an opportunity (or was created after the as-of time)" if known else "no such lead"
            raise KeyError(f"{export.source}: lead {lead_id!r} cannot be scored: {why}")
        row = self._score_cutoffs(export, cut, detail=True).iloc[0]
        return LeadScore(lead_id=row["lead_id"], probability=row["probability"], score=row["score"],
                         tier=row["tier"], positive=row["positive"], negative=row["negative"])

    def score_features(self, frame: pd.DataFrame, detail: bool = False) -> pd.DataFrame:
        """Score a feature table built by ``build_features`` with this bundle's definitions."""
        x = to_matrix(frame, self.bundle.spec, self.bundle.categories)
        contrib = np.asarray(self.bundle.booster.predict(x, pred_contrib=True))
        p, pts = probability_points(contrib, self.bundle.calibrator, self._groups)
        out = pd.DataFrame({"lead_id": frame["lead_id"].to_numpy()})
        if "cutoff" in frame.columns:
            out["cutoff"] = frame["cutoff"].to_numpy()
        out["probability"] = p
        out["score"] = np.rint(p * 100).astype(int)
        tiers = self.bundle.tiers
        out["tier"] = np.where(p >= tiers.sql, "SQL", np.where(p >= tiers.mql, "MQL", "nurture"))
        k = self.bundle.top_k
        pos, neg = self._reasons(frame, pts, k)
        if detail:
            out["positive"] = [[_reason_out(r) for r in rs] for rs in pos]
            out["negative"] = [[_reason_out(r) for r in rs] for rs in neg]
        out["reasons"] = [" | ".join(r.text for r in a + b) for a, b in zip(pos, neg, strict=True)]
        return out

    def _score_cutoffs(self, export: CrmExport, cut: pd.DataFrame, detail: bool) -> pd.DataFrame:
        frame = build_features(export, cut, self.bundle.icp, self.bundle.engagement)
        return self.score_features(frame, detail=detail)

    def _reasons(self, frame: pd.DataFrame, pts: np.ndarray, k: int) -> tuple[list[list[Reason]], list[list[Reason]]]:
        groups = self._groups
        order = np.argsort(-pts, axis=1, kind="stable")
        pos_all, neg_all = [], []
        records = frame[self.bundle.feature_names].to_dict("records")  # far faster than .iloc per row
        for i, row in enumerate(records):
            top = [j for j in order[i, :k] if pts[i, j] > 0.05]
            bottom = [j for j in order[i, ::-1][:k] if pts[i, j] < -0.05]
            pos_all.append([self._reason(groups.sources[j], pts[i, j], row) for j in top])
            neg_all.append([self._reason(groups.sources[j], pts[i, j], row) for j in bottom])
        return pos_all, neg_all

    def _reason(self, source: str, points: float, row: dict) -> Reason:
        display, value = describe(source, self._groups, row)
        head = self._groups.heads[source]
        return Reason(source, display, value, float(points), head.family,
                      head.actionable and head.family == "engagement")


def _reason_out(r: Reason) -> ReasonOut:
    return ReasonOut(source=r.source, display=r.display, value=r.value, points=r.points,
                     family=r.family, actionable=r.actionable, text=r.text)


def _utc(ts: pd.Timestamp | str) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
