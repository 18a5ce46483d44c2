"""The scorer a service imports: probabilities, 0–100 scores, tiers, grades and reasons.

>>> from propensity import LeadScorer                      # doctest: +SKIP
>>> scorer = LeadScorer.load("models/latest")                # doctest: +SKIP
>>> scorer.score("crm_export/")                             # doctest: +SKIP

Importing this module pulls in NumPy, pandas and LightGBM, not MLflow, SHAP or
matplotlib; MLflow is imported only to resolve a ``models:/`` or ``runs:/`` URI.

Batch output columns: ``lead_id``, ``cutoff``, ``probability`` (calibrated),
``score`` (``round(100 * probability)``), ``tier``, ``reasons`` (top-k positive then
negative, ``" | "``-joined), ``fit_score`` and ``engagement_score`` (0–100, 50 = the
average lead; see :mod:`propensity.scoring.reasons`), ``grade`` (A–E) and ``notes``
(what was missing or could not be used for that lead, ``""`` when nothing; one
note per field, and one for the activities of types no engagement signal lists).

Tiers: thresholds (``tiers.sql`` / ``tiers.mql``), or under a capacity policy
(``tiers.capacity.leads_per_week`` = N) exactly ``min(N, n)`` of the ``n`` open
leads scored together are SQL (:meth:`LeadScorer.score`, :meth:`~LeadScorer.score_chunks`
and :meth:`~LeadScorer.explain` all rank the export's open leads as one pool). The
ranking: calibrated probability, highest first; ties (isotonic calibration puts
many leads on one step) broken by the raw model score (log-odds, before
calibration), highest first; then by input order (the order of the output rows).
Both keys come from LightGBM's ``predict`` (``raw_score``) and the calibrator, the
same numbers whatever the chunking. ``mql`` stays a floor: a lead below it is
never SQL, so fewer than ``min(N, n)`` are SQL only when fewer reach ``mql``.
One lead scored on its own (a :class:`LeadInput`, or one lead's one-row frames)
has no pool to rank against and gets the ``tiers.sql`` threshold.

One lead (a :class:`LeadInput`, a dict with ``lead``/``account``/``activities``, or
a dict of one-row DataFrames keyed like the export's tables) takes a fast path
with no DataFrame in the middle: :func:`~propensity.scoring.leadinput.lead_rows`
checks the rows, :class:`~propensity.features.onelead.OneLead` computes the
features, one float64 row goes to ``pred_contrib`` and
:func:`~propensity.scoring.reasons.reasons_one` writes the reasons. Its numbers
equal the batch path's (tests compare them lead by lead).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from propensity.core.native import predict
from propensity.data.export import CrmExport, DataError, read_export
from propensity.features.cutoffs import scoring_cutoffs
from propensity.features.matrix import to_matrix
from propensity.features.fit import unusable_value_notes
from propensity.features.pipeline import build_features
from propensity.scoring.bundle import Bundle, BundleError, load_bundle
from propensity.features.onelead import OneLead
from propensity.features.rules import unknown_types_note
from propensity.scoring.leadinput import LeadRows, lead_export, lead_rows, stamp_us
from propensity.scoring.reasons import (ReasonGroups, assemble, family_scores, grades, probability_points,
                                        reasons_one)
from propensity.scoring.table_values import EXPECTED, Unreadable, read_column, row_notes, warning_text

__all__ = ["LeadInput", "LeadScore", "LeadScorer", "ReasonOut", "TableScorer", "checked_table_matrix", "read_table",
           "table_matrix"]

SMALL_BATCH = 32  # up to this many rows, the model matrix is built in plain Python
PARALLEL_MIN_ROWS = 4_096  # below this, one LightGBM thread beats starting the others
FEATURE_BLOCK = 500_000  # score_chunks builds features for this many leads at once (one pass over the activities)


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
    action: str = ""
    text: str


class LeadScore(BaseModel):
    lead_id: str
    probability: float
    score: int
    tier: str
    positive: list[ReasonOut]
    negative: list[ReasonOut]
    fit_score: int = 50
    engagement_score: int = 50
    grade: str = "C"
    notes: list[str] = Field(default_factory=list)


def _resolve(uri: str | Path) -> Path:
    text = str(uri)
    if text.startswith(("models:/", "runs:/", "mlflow-artifacts:/")):
        import mlflow  # lazy: only a service that loads from the registry pays for it
        from mlflow.exceptions import MlflowException

        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=text))
        except MlflowException as exc:
            # e.g. no such registered model, an alias with no version, a run without that path
            first = str(exc.message if hasattr(exc, "message") else exc).splitlines()[0]
            raise BundleError(f"{text}: cannot be loaded from MLflow at {mlflow.get_tracking_uri()} ({first})") from None
        except OSError as exc:
            raise BundleError(f"{text}: cannot be downloaded from MLflow ({exc})") from None
        found = sorted(local.rglob("bundle.json"))
        if found:
            return found[0].parent
        raise BundleError(f"{text}: the MLflow artifact holds no propensity bundle")
    return Path(uri)


class LeadScorer:
    """Scores leads with a trained bundle. Stateless after loading: safe across threads.

    Calls from many threads run side by side except inside LightGBM, which one
    thread enters at a time (:mod:`propensity.core.native`); a stress test in the
    suite scores thousands of leads from 8 threads against one thread's results.
    """

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self._groups = ReasonGroups.from_spec(bundle.spec)
        # LightGBM remaps pandas categories to the training ones; when the bundle's
        # categories are those (they are, for bundles written by train), the codes
        # can go in as a plain float matrix, which skips LightGBM's pandas handling.
        cat_names = [f.name for f in bundle.spec if f.kind == "categorical"]
        trained = getattr(bundle.booster, "pandas_categorical", None) or []
        self._codes_ok = [list(map(str, c)) for c in trained] == [bundle.categories.get(n, []) for n in cat_names]
        self._cat_pos = [i for i, f in enumerate(bundle.spec) if f.kind == "categorical"]
        self._criteria = [(c, f"fit_{c.name}", f"fit_{c.name}_value") for c in bundle.icp.criteria]
        self._pos = {f.name: j for j, f in enumerate(bundle.spec)}
        self._codes = {j: {str(v): float(k) for k, v in enumerate(bundle.categories.get(f.name, []))}
                       for j, f in enumerate(bundle.spec) if f.kind == "categorical"}
        # One lead (a service's call) skips DataFrames when the bundle's features are the configs' own
        self._onelead = OneLead(bundle.icp, bundle.engagement)
        self._fast = self._codes_ok and set(bundle.feature_names) <= set(self._onelead.names)
        read = {t: [c.column for c in bundle.icp.criteria if c.table == t] for t in ("leads", "accounts")}
        self._lead_columns = list(dict.fromkeys(["lead_id", "account_id", "created_at", *read["leads"]]))
        self._account_columns = list(dict.fromkeys(["account_id", *read["accounts"]]))

    @classmethod
    def load(cls, uri: str | Path) -> LeadScorer:
        """Load from a bundle folder, or an MLflow ``models:/NAME@alias`` / ``runs:/`` URI.

        Trust boundary: this reads only JSON and LightGBM's text model format (no
        pickle; no code from the bundle or the artifact store is run). A URI is
        downloaded first; either way :func:`~propensity.scoring.bundle.load_bundle`
        checks the SHA-256 digests ``bundle.json`` records and validates every field
        before LightGBM parses anything, and raises :class:`BundleError` naming the
        damaged or invalid file. Loading the same registered model with
        ``mlflow.pyfunc.load_model``, ``mlflow models serve`` or Spark
        (:func:`propensity.spark.score_spark`) runs the Python entry file logged with
        it, so whoever can write to the MLflow artifact store can run code there: for
        a store you do not fully trust, load with this method. The digests catch
        damage and edits; they are no signature (whoever can rewrite the files can
        rewrite the digests, and such a file still reaches LightGBM's native parser).
        """
        bundle = load_bundle(_resolve(uri))
        if not isinstance(bundle, Bundle):
            raise BundleError(f"{uri}: a model trained on a flat table; score it with a table file "
                              "(propensity score --data FILE.csv) or TableScorer")
        return cls(bundle)

    # ------------------------------------------------------------------ inputs

    def _export(self, data: Any) -> CrmExport:
        if isinstance(data, CrmExport):
            return data
        # lenient: a bad row costs its lead a note or an error row, never the whole batch
        if isinstance(data, (str, Path)):
            return read_export(data, lenient=True)
        if isinstance(data, dict):
            return CrmExport.from_frames(data, lenient=True)
        raise TypeError(f"cannot score {type(data).__name__}; pass a CRM export folder, a dict of DataFrames "
                        "keyed accounts/leads/activities, or a LeadInput")

    # ----------------------------------------------------------------- scoring

    @overload
    def score(self, data: LeadInput, as_of: pd.Timestamp | str | None = None) -> LeadScore: ...

    @overload
    def score(self, data: str | Path | CrmExport | dict[str, pd.DataFrame],
              as_of: pd.Timestamp | str | None = None) -> pd.DataFrame: ...

    @overload
    def score(self, data: dict[str, Any], as_of: pd.Timestamp | str | None = None) -> pd.DataFrame | LeadScore: ...

    def score(self, data: Any, as_of: pd.Timestamp | str | None = None) -> pd.DataFrame | LeadScore:
        """Score every open lead in ``data`` as of ``as_of`` (default: the end of the data).

        ``data`` is a CRM export folder, a dict of DataFrames keyed ``accounts``,
        ``leads``, ``activities`` (``opportunities`` optional), or one lead (a
        :class:`LeadInput` or a dict with keys ``lead``, ``account``, ``activities``),
        for which a :class:`LeadScore` is returned instead of a DataFrame.
        Only events before ``as_of`` (occurred and recorded) are used.

        A dict of DataFrames holding exactly one lead is scored on the fast one-lead
        path (a service's usual call) and still returns a one-row DataFrame (no
        rows when the lead was created at or after ``as_of``; a :class:`LeadInput`
        gets a ``ValueError`` then).
        """
        if isinstance(data, dict) and "lead" in data:
            data = LeadInput.model_validate(data)
        if isinstance(data, LeadInput):
            if self._fast:
                rows = lead_rows(data.lead, data.account, data.activities, as_of, self.bundle.icp)
                one = self._one(rows, as_of)
                if one is None:
                    raise ValueError(f"lead {rows.lead_id!r} cannot be scored as of {as_of}: it was created after "
                                     "that time or already has an opportunity")
                return one.lead_score()
            export, notes = lead_export(data.lead, data.account, data.activities, as_of, self.bundle.icp)
            return self._score_one(export, notes, as_of)
        if isinstance(data, dict) and _one_lead_frames(data):
            # only the columns the features read: a CRM row has dozens, and pandas pays per column
            lead = _row(data["leads"], 0, self._lead_columns)
            acts = data.get("activities")
            account = _account_row(data.get("accounts"), lead.get("account_id"), self._account_columns)
            if self._fast:
                one = self._one(lead_rows(lead, account, [] if acts is None else acts, as_of, self.bundle.icp),
                                as_of)
                if one is not None:
                    return one.frame()
            # not scorable as of that time: the general path gives its (empty) table
            export, notes = lead_export(lead, account, [] if acts is None else acts, as_of, self.bundle.icp)
            cut = self._cutoffs(export, as_of)
            return self._score_cutoffs(export, cut, detail=False, extra_notes=notes)
        export = self._export(data)
        cut = self._cutoffs(export, as_of)
        frame = build_features(export, cut, self.bundle.icp, self.bundle.engagement)
        x, notes = self._matrix(frame)
        notes = self._value_notes(notes, export, cut)
        notes = self._type_notes(notes, self._unknown_events(export), cut)
        contrib = self._contrib(x)
        sql = self._capacity_sql(*self._rank_keys(x)) if self.bundle.tiers.capacity is not None else None
        out = self._assemble(frame, contrib, _export_notes(notes, export, cut), detail=False, sql_leads=sql)
        return _with_rejected(out, export)

    def _score_one(self, export: CrmExport, notes: list[str], as_of: Any) -> LeadScore:
        cut = self._cutoffs(export, as_of)
        lead_id = str(export.leads["lead_id"].iloc[0])
        if cut.empty:
            raise ValueError(f"lead {lead_id!r} cannot be scored as of {as_of}: it was created after "
                             "that time or already has an opportunity")
        row = self._score_cutoffs(export, cut, detail=True, extra_notes=notes).iloc[0]
        return _lead_score(row)

    def _one(self, rows: LeadRows, as_of: Any) -> _OneScore | None:
        """One lead scored without DataFrames; None when it has no cutoff (created at or after it).

        The same numbers as the batch path, step by step: the cutoff of
        :meth:`_cutoffs`, the features of ``build_features``
        (:class:`~propensity.features.onelead.OneLead`), the matrix row and notes of
        :meth:`_small_matrix`, exact SHAP from ``pred_contrib`` and the reasons of
        :func:`~propensity.scoring.reasons.assemble` (:func:`reasons_one`).
        """
        b = self.bundle
        if as_of is None:  # the end of the data + 1 µs, as for any export
            t = t_ceil = rows.end() + 1
        else:
            stamp = _utc(as_of)
            t, t_ceil = stamp_us(stamp), stamp_us(stamp, ceil=True)
        if rows.created >= t_ceil:
            return None
        self._onelead.warn_unknown_types(rows.types, stacklevel=3)  # as build_features does
        values = self._onelead.features(rows.lead, rows.account, rows.types, rows.occ, rows.rec, t, rows.created)
        x = np.full((1, len(b.spec)), np.nan)
        notes = _merge_notes(rows.notes, self._encode_row([values[n] for n in b.feature_names], x[0]))
        unknown = self._onelead.unknown_types(rows.types, rows.occ, rows.rec, t)
        if unknown:
            notes.append(unknown_types_note(unknown))
        contrib = self._contrib(x)
        p, pts, lo = probability_points(contrib, b.calibrator, self._groups, with_log_odds=True)
        fit, eng = family_scores(contrib, self._groups)
        pos, neg, joined = reasons_one(self._groups, values, pts[0], b.top_k, log_odds=lo[0])
        prob = float(p[0])
        # one lead alone: no pool to rank against, so the sql threshold even under a capacity policy
        tier = "SQL" if prob >= b.tiers.sql else "MQL" if prob >= b.tiers.mql else "nurture"
        return _OneScore(rows.lead_id, t, prob, tier, pos, neg, joined, int(fit[0]), int(eng[0]),
                         str(grades(fit, eng)[0]), notes, contrib[0])

    def score_chunks(self, data: Any, as_of: pd.Timestamp | str | None = None, chunk_size: int = 50_000):
        """Score the open leads of ``data`` in chunks of ``chunk_size`` leads.

        Yields ``(n_leads_total, DataFrame)`` pairs; the chunks together equal
        :meth:`score` on the same data, in the same order. Under a capacity tier
        policy a first pass computes every probability (features and ``predict``,
        no SHAP) to rank all leads as one pool (see the module docstring), not per chunk.
        """
        export = self._export(data)
        cut = self._cutoffs(export, as_of)
        # Features are built per block of many chunks: each build passes over every
        # activity of the export, so 50k-lead builds would repeat that pass 20 times
        # per million leads. SHAP, reasons and output stay per chunk.
        block = max(chunk_size, FEATURE_BLOCK // chunk_size * chunk_size)
        blocks = [cut.iloc[s:s + block].reset_index(drop=True) for s in range(0, max(len(cut), 1), block)]
        sql = self._pool_sql(export, blocks)
        unknown = self._unknown_events(export)
        total = len(cut) + len(export.rejected)
        start = 0
        for b, rows in enumerate(blocks):
            frame = build_features(export, rows, self.bundle.icp, self.bundle.engagement)
            for s in range(0, max(len(rows), 1), chunk_size):
                part = rows.iloc[s:s + chunk_size].reset_index(drop=True)
                mask = None if sql is None else sql[start:start + len(part)]
                start += len(part)
                out = self._score_cutoffs(export, part, detail=False, sql_leads=mask, unknown=unknown,
                                          frame=frame.iloc[s:s + chunk_size].reset_index(drop=True))
                last = b == len(blocks) - 1 and s + chunk_size >= len(rows)
                yield total, (_with_rejected(out, export) if last else out)

    def explain(self, data: Any, lead_id: str, as_of: pd.Timestamp | str | None = None) -> LeadScore:
        """Score one lead of an export and return its full explanation.

        The lead's tier is the one :meth:`score` gives it on the same export: under a
        capacity policy every open lead of the export is ranked (``predict`` only, no
        SHAP) and the lead is SQL when it is among the ``leads_per_week`` first.
        """
        export = self._export(data)
        every = self._cutoffs(export, as_of)
        pick = (every["lead_id"] == str(lead_id)).to_numpy(dtype=bool)
        cut = every[pick].reset_index(drop=True)
        if cut.empty:
            if str(lead_id) in export.rejected:
                raise KeyError(f"{export.source}: lead {lead_id!r} cannot be scored: {export.rejected[str(lead_id)]}")
            known = export.leads["lead_id"].eq(str(lead_id)).any()
            why = "it already has an opportunity (or was created after the as-of time)" if known else "no such lead"
            raise KeyError(f"{export.source}: lead {lead_id!r} cannot be scored: {why}")
        sql = None
        if self.bundle.tiers.capacity is not None:
            parts = [every.iloc[s:s + FEATURE_BLOCK].reset_index(drop=True)
                     for s in range(0, len(every), FEATURE_BLOCK)]
            sql = self._pool_sql(export, parts)[pick]
        return _lead_score(self._score_cutoffs(export, cut, detail=True, sql_leads=sql).iloc[0])

    def score_features(self, frame: pd.DataFrame, detail: bool = False,
                       sql_threshold: float | None = None) -> pd.DataFrame:
        """Score a feature table built by ``build_features`` with this bundle's definitions.

        ``sql_threshold`` overrides the bundle's ``sql`` probability (the capacity
        policy passes the cut it placed over all leads scored together). Without it,
        SQL is ``probability >= sql`` even under a capacity policy: the rows of a
        feature table (a served request, say) are not taken for the week's whole
        pool; :meth:`score` and :meth:`score_chunks` rank the pool of an export.
        """
        x, notes = self._matrix(frame)
        return self._assemble(frame, self._contrib(x), notes, detail, sql_threshold)

    def tier_summary(self, scores: pd.DataFrame) -> dict:
        """The tier policy applied to ``scores``: SQL count, threshold, expected conversions.

        ``sql_threshold`` is the lowest probability among the SQL leads (under a
        capacity policy leads at that probability may be left out by the tie-break,
        see the module docstring) and ``expected_conversions`` the sum of the SQL
        leads' probabilities.
        """
        t = self.bundle.tiers
        sql = scores["tier"].eq("SQL").to_numpy()
        p = scores["probability"].to_numpy()
        return {"policy": "capacity" if t.capacity else "thresholds",
                "leads_per_week": t.capacity.leads_per_week if t.capacity else None,
                "sql_threshold": float(p[sql].min()) if sql.any() else t.sql_threshold(p),
                "sql_leads": int(sql.sum()), "mql_leads": int(scores["tier"].eq("MQL").sum()),
                "expected_conversions": float(p[sql].sum())}

    # ------------------------------------------------------------------ steps

    @staticmethod
    def _cutoffs(export: CrmExport, as_of: Any) -> pd.DataFrame:
        if export.source == "<lead>":  # one lead, no opportunities: scoring_cutoffs' rule, without its sorting
            t = export.end() + pd.Timedelta(microseconds=1) if as_of is None else _utc(as_of)
            created = export.leads["created_at"].iloc[0]
            ids = [] if created >= t else [str(export.leads["lead_id"].iloc[0])]
            return pd.DataFrame({"lead_id": pd.Series(ids, dtype=object),
                                 "cutoff": pd.Series([t] * len(ids), dtype="datetime64[us, UTC]")})
        return scoring_cutoffs(export, None if as_of is None else _utc(as_of))

    def _score_cutoffs(self, export: CrmExport, cut: pd.DataFrame, detail: bool,
                       sql_threshold: float | None = None, extra_notes: list[str] | None = None,
                       sql_leads: np.ndarray | None = None, unknown: Any = False,
                       frame: pd.DataFrame | None = None) -> pd.DataFrame:
        """Score the ``cut`` rows of ``export``; ``unknown``: :meth:`_unknown_events`, when already known;
        ``frame``: the rows' features, when already built."""
        if frame is None:
            frame = build_features(export, cut, self.bundle.icp, self.bundle.engagement)
        x, notes = self._matrix(frame)
        if extra_notes:
            notes = [_merge_notes(extra_notes, n) for n in notes]
        notes = self._value_notes(notes, export, cut)
        notes = self._type_notes(notes, self._unknown_events(export) if unknown is False else unknown, cut)
        notes = _export_notes(notes, export, cut)
        return self._assemble(frame, self._contrib(x), notes, detail, sql_threshold, sql_leads)

    def _probability_only(self, export: CrmExport, cut: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_rank_keys` of the ``cut`` rows: features and ``predict``, no SHAP."""
        frame = build_features(export, cut, self.bundle.icp, self.bundle.engagement)
        x, _ = self._matrix(frame)
        return self._rank_keys(x)

    def _rank_keys(self, x: np.ndarray | pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(calibrated probability, raw log-odds) per row, from ``predict``: the capacity ranking's keys."""
        if len(x) == 0:
            return np.empty(0), np.empty(0)
        raw = predict(self.bundle.booster, x, threads=_threads(len(x)), raw_score=True).astype(np.float64)
        return self.bundle.calibrator(1.0 / (1.0 + np.exp(-raw))), raw

    def _capacity_sql(self, p: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Which leads of one pool are SQL under the capacity policy (the module docstring's rule)."""
        t = self.bundle.tiers
        n = len(p)
        k = min(t.capacity.leads_per_week, n)
        # np.lexsort: the last key is the primary one; the row number makes the order total
        order = np.lexsort((np.arange(n), -raw, -p))
        sql = np.zeros(n, dtype=bool)
        sql[order[:k]] = True
        return sql & (p >= t.mql)

    def _pool_sql(self, export: CrmExport, parts: list[pd.DataFrame]) -> np.ndarray | None:
        """The SQL leads of the cutoffs ``parts`` (in order) ranked as one pool; None without a capacity policy."""
        if self.bundle.tiers.capacity is None:
            return None
        keys = [self._probability_only(export, part) for part in parts if len(part)]
        if not keys:
            return np.zeros(0, dtype=bool)
        return self._capacity_sql(np.concatenate([p for p, _ in keys]), np.concatenate([r for _, r in keys]))

    def _unknown_events(self, export: CrmExport) -> tuple | None:
        """The export's activities of types no engagement signal lists (usually none: no pass at all).

        ``(lead_id, occurred µs, recorded µs, type, position)`` arrays, in table order.
        """
        acts = export.activity_arrays()
        known = self.bundle.engagement.activity_types
        unlisted = [c for c, name in enumerate(acts.types.tolist()) if name not in known]
        if not unlisted or not len(acts):
            return None
        idx = np.flatnonzero(np.isin(acts.code, unlisted) & (acts.lead >= 0))
        if not len(idx):
            return None
        ids = export.leads["lead_id"].to_numpy(dtype=object)[acts.lead[idx]]
        return ids, acts.occ[idx], acts.rec[idx], acts.types[acts.code[idx]], idx

    def _value_notes(self, notes: list[list[str]], export: CrmExport, cut: pd.DataFrame) -> list[list[str]]:
        """``notes`` with, first, the ICP values of the rows' leads that are no finite number, named.

        The one-lead path notes them as it reads the lead (``lead_rows``); the field's
        own "unknown" note is then left out, as there.
        """
        if not len(cut):
            return notes
        found = unusable_value_notes(export, self.bundle.icp, cut["lead_id"])
        if not found:
            return notes
        notes = list(notes)
        for i, own in found.items():
            notes[i] = _merge_notes(own, notes[i])
        return notes

    @staticmethod
    def _type_notes(notes: list[list[str]], unknown: tuple | None, cut: pd.DataFrame) -> list[list[str]]:
        """``notes`` plus, per row of ``cut``, the note on its ignored activities of unknown types.

        Counted as the one-lead path counts them: the lead's activities of those types
        that occurred and were recorded before the row's cutoff.
        """
        if unknown is None or not len(cut) or not cut["lead_id"].is_unique:
            return notes
        ids, occ, rec, types, _pos = unknown
        row = pd.Index(cut["lead_id"].astype(str).to_numpy(dtype=object)).get_indexer(ids.astype(str))
        hit = row >= 0
        if not hit.any():
            return notes
        cutoff = cut["cutoff"].astype("datetime64[us, UTC]").array.asi8
        hit[hit] = (occ[hit] < cutoff[row[hit]]) & (rec[hit] < cutoff[row[hit]])
        per: dict[int, dict[str, int]] = {}
        for r, name in zip(row[hit].tolist(), types[hit].tolist(), strict=True):  # in table order
            counts = per.setdefault(r, {})
            counts[name] = counts.get(name, 0) + 1
        notes = list(notes)
        for r, counts in per.items():
            notes[r] = [*notes[r], unknown_types_note(counts)]
        return notes

    def _matrix(self, frame: pd.DataFrame) -> tuple[np.ndarray | pd.DataFrame, list[list[str]]]:
        """The model matrix and, per row, notes on what could not be used.

        Non-finite numbers (±inf) in ICP values are treated as unknown, like a
        missing value; a category never seen in training is unknown too.
        """
        b = self.bundle
        if len(frame) <= SMALL_BATCH and self._codes_ok:
            return self._small_matrix(frame)
        frame, notes = self._clean(frame)
        x = to_matrix(frame, b.spec, b.categories)
        if not self._codes_ok:
            return x, notes
        m = np.empty((len(x), len(b.spec)), dtype=np.float64)
        cat = set(self._cat_pos)
        for i, name in enumerate(x.columns):
            col = x[name]
            if i in cat:
                codes = col.cat.codes.to_numpy()
                m[:, i] = np.where(codes < 0, np.nan, codes)
            else:
                m[:, i] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return m, notes

    def _small_matrix(self, frame: pd.DataFrame) -> tuple[np.ndarray, list[list[str]]]:
        """:meth:`_matrix` for a few rows in plain Python: pandas costs ~10 ms a call there.

        Same values as ``to_matrix`` (numbers coerced, unknown categories missing) and
        the same notes as :meth:`_clean`; a test checks both against the batch path.
        """
        b = self.bundle
        pos = frame.columns.get_indexer(b.feature_names)
        if (pos < 0).any():
            to_matrix(frame, b.spec, b.categories)  # raises the KeyError naming the missing features
        obj = frame.to_numpy(dtype=object)[:, pos]
        m = np.full(obj.shape, np.nan)
        notes: list[list[str]] = []
        for i in range(len(frame)):
            notes.append(self._encode_row(obj[i].tolist(), m[i]))
        return m, notes

    def _encode_row(self, values: list, out: np.ndarray) -> list[str]:
        """One feature row (values in spec order) into ``out`` (float64); its notes.

        Plain Python floats until the end: NumPy's per-element access costs more
        than the work for one row.
        """
        codes_at = self._codes
        nan = math.nan
        row = [nan] * len(values)
        for j, v in enumerate(values):
            codes = codes_at.get(j)
            if codes is not None:
                if v is not None and v == v:
                    row[j] = codes.get(str(v), nan)
            else:
                row[j] = _float(v)
        notes: list[str] = []
        for c, flag, value in self._criteria:
            jf, jv = self._pos.get(flag), self._pos.get(value)
            if jv is not None and c.raw:
                v = row[jv]
                if c.numeric and math.isinf(v):
                    row[jv] = nan
                    if jf is not None:
                        row[jf] = nan
                    notes.append(f"{c.display}: not a finite number, treated as unknown")
                    continue
                raw = values[jv]
                if not c.numeric and raw is not None and raw == raw and math.isnan(v):
                    notes.append(f"{c.display}: {raw!r} not seen in training, treated as unknown")
                    continue
                if raw is None or raw != raw or math.isnan(v):
                    notes.append(f"{c.display}: unknown")
            elif jf is not None and math.isnan(row[jf]):
                notes.append(f"{c.display}: unknown")
        out[:] = row
        return notes

    def _clean(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[list[str]]]:
        n = len(frame)
        notes: list[list[str]] = [[] for _ in range(n)]
        replace: dict[str, np.ndarray] = {}
        for c, flag, value in self._criteria:
            if c.raw and value in frame.columns:
                v = frame[value].to_numpy()
                if c.numeric:
                    num = pd.to_numeric(pd.Series(v, dtype=object), errors="coerce").to_numpy(
                        dtype=np.float64, na_value=np.nan)
                    bad = np.isinf(num)
                    unknown = np.isnan(num)
                    if bad.any():
                        replace[value] = np.where(bad, np.nan, num)
                        if flag in frame.columns:
                            replace[flag] = np.where(bad, np.nan, frame[flag].to_numpy(dtype=np.float64))
                        for i in np.flatnonzero(bad):
                            notes[i].append(f"{c.display}: not a finite number, treated as unknown")
                else:
                    unknown = pd.isna(v)
                    known = self.bundle.categories.get(value, [])
                    unseen = ~unknown & ~pd.Series(v, dtype=object).astype(str).isin(known).to_numpy()
                    for i in np.flatnonzero(unseen):
                        notes[i].append(f"{c.display}: {v[i]!r} not seen in training, treated as unknown")
            elif flag in frame.columns:
                unknown = np.isnan(frame[flag].to_numpy(dtype=np.float64))
            else:
                continue
            for i in np.flatnonzero(unknown):
                notes[i].append(f"{c.display}: unknown")
        if replace:
            frame = frame.assign(**replace)
        return frame, notes

    def _contrib(self, x: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Exact TreeSHAP (``pred_contrib``): one LightGBM call, on every core for big batches."""
        if len(x) == 0:  # LightGBM's pred_contrib fails on no rows (e.g. a lead created after as_of)
            return np.empty((0, len(self.bundle.spec) + 1))
        return predict(self.bundle.booster, x, threads=_threads(len(x)), pred_contrib=True)

    def _assemble(self, frame: pd.DataFrame, contrib: np.ndarray, notes: list[list[str]], detail: bool,
                  sql_threshold: float | None = None, sql_leads: np.ndarray | None = None) -> pd.DataFrame:
        """The output table; SQL rows are ``sql_leads`` when given, else ``p >= sql_threshold`` (or ``sql``)."""
        b = self.bundle
        p, pts, lo = probability_points(contrib, b.calibrator, self._groups, with_log_odds=True)
        fit, eng = family_scores(contrib, self._groups)
        table = assemble(self._groups, frame, pts, b.top_k, log_odds=lo)
        out = pd.DataFrame({"lead_id": frame["lead_id"].to_numpy()})
        if "cutoff" in frame.columns:
            out["cutoff"] = frame["cutoff"].to_numpy()
        out["probability"] = p
        out["score"] = np.rint(p * 100).astype(int)
        if sql_leads is None:
            sql_leads = p >= (b.tiers.sql if sql_threshold is None else sql_threshold)
        out["tier"] = np.where(sql_leads, "SQL", np.where(p >= b.tiers.mql, "MQL", "nurture"))
        if detail:
            rows = [table.row(i, self._groups) for i in range(len(frame))]
            out["positive"] = [[_reason_out(r) for r in pos] for pos, _ in rows]
            out["negative"] = [[_reason_out(r) for r in neg] for _, neg in rows]
            out["note_list"] = notes
        out["reasons"] = table.joined.astype(object)
        out["fit_score"] = fit
        out["engagement_score"] = eng
        out["grade"] = grades(fit, eng)
        out["notes"] = ["; ".join(n) for n in notes]
        return out


def _threads(rows: int) -> int:
    """LightGBM threads for a call on ``rows`` rows: one for a few (a service's lead), else every core (0)."""
    return 1 if rows < PARALLEL_MIN_ROWS else 0


def _export_notes(notes: list[list[str]], export: CrmExport, cut: pd.DataFrame) -> list[list[str]]:
    """``notes`` with, first on each row, what a lenient read set aside for that row's lead."""
    if not export.lead_notes or not len(cut):
        return notes
    ids = cut["lead_id"].astype(str).tolist()
    return [[*export.lead_notes.get(lead, []), *n] if lead in export.lead_notes else n
            for lead, n in zip(ids, notes, strict=True)]


def _with_rejected(out: pd.DataFrame, export: CrmExport) -> pd.DataFrame:
    """``out`` plus one error row per lead a lenient read could not score (tier ``error``, the reason in notes).

    Error rows come last, in the order the export lists them; their probability is
    NaN and their scores are missing (nullable integers), so a CSV shows them empty.
    """
    if not export.rejected:
        return out
    ids = list(export.rejected)
    err = pd.DataFrame({c: pd.Series([pd.NA] * len(ids), dtype=object) for c in out.columns})
    err["lead_id"] = pd.Series(ids, dtype=out["lead_id"].dtype if len(out) else object)
    if "cutoff" in out.columns:
        err["cutoff"] = pd.Series([pd.NaT] * len(ids), dtype=out["cutoff"].dtype)
    err["probability"] = np.nan
    ints = [c for c in ("score", "fit_score", "engagement_score") if c in out.columns]
    out = out.astype(dict.fromkeys(ints, "Int64"))
    for c in ints:
        err[c] = pd.Series([pd.NA] * len(ids), dtype="Int64")
    err["tier"] = "error"
    for c in ("reasons", "grade"):
        if c in out.columns:
            err[c] = ""
    err["notes"] = [f"not scored: {export.rejected[i]}" for i in ids]
    return pd.concat([out, err[out.columns]], ignore_index=True)


class _OneScore:
    """One lead's result on the fast path, before it becomes a LeadScore or a one-row table."""

    __slots__ = ("contrib", "cutoff", "eng", "fit", "grade", "joined", "lead_id", "negative", "notes", "positive",
                 "probability", "tier")

    def __init__(self, lead_id: str, cutoff: int, probability: float, tier: str, positive: list, negative: list,
                 joined: str, fit: int, eng: int, grade: str, notes: list[str], contrib: np.ndarray):
        self.lead_id, self.cutoff, self.probability, self.tier = lead_id, cutoff, probability, tier
        self.positive, self.negative, self.joined = positive, negative, joined
        self.fit, self.eng, self.grade, self.notes = fit, eng, grade, notes
        self.contrib = contrib  # the row's pred_contrib (SHAP values, then the expected value)

    @property
    def score(self) -> int:
        return int(np.rint(self.probability * 100))

    def lead_score(self) -> LeadScore:
        return LeadScore(lead_id=self.lead_id, probability=self.probability, score=self.score, tier=self.tier,
                         positive=[_reason_out(r) for r in self.positive],
                         negative=[_reason_out(r) for r in self.negative], fit_score=self.fit,
                         engagement_score=self.eng, grade=self.grade, notes=self.notes)

    def frame(self) -> pd.DataFrame:
        """The one-row table :meth:`LeadScorer._assemble` gives (same columns and dtypes)."""
        return pd.DataFrame({
            "lead_id": np.array([self.lead_id], dtype=object),
            "cutoff": pd.DatetimeIndex(np.array([self.cutoff], dtype="datetime64[us]")).tz_localize("UTC"),
            "probability": np.array([self.probability]),
            "score": np.array([self.score], dtype=int),
            "tier": np.array([self.tier]),
            "reasons": np.array([self.joined], dtype=object),
            "fit_score": np.array([self.fit], dtype=np.int64),
            "engagement_score": np.array([self.eng], dtype=np.int64),
            "grade": np.array([self.grade], dtype=object),
            "notes": np.array(["; ".join(self.notes)], dtype=object),
        }, copy=False)  # the arrays are new: no copy needed


def _float(v: object) -> float:
    """``pd.to_numeric(errors="coerce")`` for one value."""
    if v is None or isinstance(v, (bool, np.bool_)):
        return float(v) if v is not None else np.nan
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return np.nan


def _merge_notes(first: list[str], own: list[str]) -> list[str]:
    """``first`` (the input checks' notes) then ``own`` (the matrix's), one note per field.

    A field the input checks already noted (e.g. "Company size (employees): '1,200'
    is not a number, treated as unknown") gets no second "...: unknown" note.
    """
    if not first:
        return list(own)
    noted = {n.split(": ", 1)[0] for n in first if ": " in n}
    return [*first, *(n for n in own if n.split(": ", 1)[0] not in noted)]


def _lead_score(row: pd.Series) -> LeadScore:
    return LeadScore(lead_id=row["lead_id"], probability=row["probability"], score=row["score"], tier=row["tier"],
                     positive=row["positive"], negative=row["negative"], fit_score=row["fit_score"],
                     engagement_score=row["engagement_score"], grade=row["grade"], notes=row["note_list"])


def _reason_out(r) -> ReasonOut:  # noqa: ANN001 - a reasons.Reason
    return ReasonOut(source=r.source, display=r.display, value=r.value, points=r.points, family=r.family,
                     actionable=r.actionable, action=r.action, text=r.text)


def _one_lead_frames(data: dict) -> bool:
    leads = data.get("leads")
    return (isinstance(leads, pd.DataFrame) and len(leads) == 1 and set(data) <= {"leads", "accounts", "activities"}
            and all(isinstance(data.get(k), pd.DataFrame) for k in ("accounts", "activities") if k in data))


def _account_row(df: pd.DataFrame | None, account_id: object, columns: list[str] | None = None) -> dict | None:
    """The lead's account row of a small accounts frame (its only row when ids are absent)."""
    if df is None or len(df) == 0:
        return None
    k = 0
    if "account_id" in df.columns and account_id is not None:
        wanted = str(account_id)  # str() per id: ``astype(str)``'s text, without a pandas copy
        hit = [i for i, v in enumerate(df["account_id"].to_numpy(dtype=object).tolist()) if str(v) == wanted]
        if not hit:
            return None
        k = hit[0]
    return _row(df, k, columns)


def _row(df: pd.DataFrame, k: int, columns: list[str] | None = None) -> dict:
    """Row ``k`` of ``df`` as a dict, of ``columns`` only (those present) when given.

    ``DataFrame.iat`` per wanted column costs a fraction of ``iloc[k].to_dict()``,
    which converts every column of the row.
    """
    cols = df.columns
    if columns is None or not cols.is_unique:
        return df.iloc[k].to_dict()
    at, loc = df.iat, cols.get_loc
    return {c: at[k, loc(c)] for c in columns if c in cols}


def _utc(ts: pd.Timestamp | str) -> pd.Timestamp:
    if isinstance(ts, (bool, int, float, np.number)):  # pandas would read 1735689600 as ns after 1970
        raise DataError(f"as_of: expected an ISO-8601 timestamp with a time zone, e.g. 2025-01-31T09:00:00Z; "
                        f"got the bare number {ts!r}")
    try:
        t = pd.Timestamp(ts)
    except (TypeError, ValueError) as exc:
        raise DataError(f"as_of: expected a timestamp, e.g. 2025-01-31T09:00:00Z; got {ts!r} ({exc})") from None
    if t is pd.NaT or (isinstance(t, float) and math.isnan(t)):
        raise DataError("as_of: expected a timestamp; got an empty value")
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


# ------------------------------------------------------------- flat tables

def table_matrix(df: pd.DataFrame, schema: dict) -> np.ndarray:
    """The model matrix (float64, one column per ``schema["features"]``) of a flat table.

    The one transform for training and scoring. Per input column kind:
    ``numeric`` (text coerced; each listed sentinel becomes missing plus a 0/1 flag
    column ``name==value``), ``boolean`` (yes/no, true/false, 1/0 → 1/0),
    ``categorical`` (category codes; a value unseen in training goes to
    ``__other__`` when training had rare values, else missing), ``date`` (days
    since 1970, month, day of week), ``text`` (free text: a 0/1 column
    ``name__has_token`` per token listed in the schema, then ``name__tokens``, the
    value's token count; tokens not listed are ignored). Missing values stay NaN
    (LightGBM's own missing-value handling), and so do values the kind cannot read
    (text in a numeric column, ``inf``, ...): :func:`checked_table_matrix` names them.
    """
    return checked_table_matrix(df, schema)[0]


def checked_table_matrix(df: pd.DataFrame, schema: dict) -> tuple[np.ndarray, list[Unreadable]]:
    """:func:`table_matrix` and, per column that has any, the present values its kind could not read.

    See :mod:`propensity.scoring.table_values`: each such value is missing in the
    matrix, and is listed here (rows and raw values) to be counted and named.
    """
    cols: list[np.ndarray] = []
    found: list[Unreadable] = []
    for c in schema["columns"]:
        s = df[c["name"]]
        kind = c["kind"]
        if kind == "text":
            cols += _text_features(s, c["tokens"])
            continue
        if kind not in EXPECTED:
            raise BundleError(f"table schema: column {c['name']!r} has unknown kind {kind!r}")
        v, bad = read_column(s, c)
        if bad.any():
            rows = np.flatnonzero(bad)
            found.append(Unreadable(c["name"], kind, rows, s.to_numpy(dtype=object)[rows]))
        if kind == "numeric":
            flags = []
            for sentinel in c.get("sentinels", []):
                hit = v == sentinel
                flags.append(np.where(np.isnan(v), np.nan, hit.astype(float)))
                v = np.where(hit, np.nan, v)
            cols += [v, *flags]
        elif kind == "date":
            days = (v - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds() / 86400.0
            cols += [days.to_numpy(dtype=np.float64, na_value=np.nan),
                     v.dt.month.to_numpy(dtype=np.float64, na_value=np.nan),
                     v.dt.day_of_week.to_numpy(dtype=np.float64, na_value=np.nan)]
        else:
            cols.append(v)
    if not cols:
        return np.empty((len(df), 0)), found
    return np.column_stack(cols), found


def check_table_columns(df: pd.DataFrame, schema: dict, source: str = "the table") -> None:
    """Refuse a table whose columns differ from the training table's (the target may be present or not)."""
    expected = list(schema["input_columns"])
    have = [str(c) for c in df.columns if str(c) != schema["target"]]
    missing = [c for c in expected if c not in have]
    extra = [c for c in have if c not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(map(repr, missing[:8]))}")
        if extra:
            parts.append(f"unexpected {', '.join(map(repr, extra[:8]))}")
        raise ValueError(f"{source}: columns do not match the model's ({'; '.join(parts)}); expected the training "
                         f"table's columns minus the target {schema['target']!r}")


class TableScorer:
    """Scores a flat table with a :class:`~propensity.scoring.bundle.TableBundle`.

    Output keeps the input's row order: the id column (when the model has one),
    ``probability`` (calibrated), ``score`` (0–100), ``reasons`` (the top
    input columns by exact SHAP log-odds, signed, per source column) and ``notes``
    (the row's values the model could not read, each treated as missing; ``""``
    when none).
    """

    def __init__(self, bundle):  # noqa: ANN001 - a TableBundle
        self.bundle = bundle
        schema = bundle.schema
        self._source = [c["name"] for c in schema["columns"] for _ in range(_width(c))]

    @classmethod
    def load(cls, uri: str | Path) -> TableScorer:
        """Load a flat-table bundle from a folder or an MLflow URI; the same checks and trust boundary as
        :meth:`LeadScorer.load` (only JSON and LightGBM text are read, digests verified first)."""
        bundle = load_bundle(_resolve(uri))
        if getattr(bundle, "schema", None) is None:
            raise BundleError(f"{uri}: a CRM model bundle; score it with a CRM export folder")
        return cls(bundle)

    def predict(self, df: pd.DataFrame, source: str = "the table") -> np.ndarray:
        """Calibrated probabilities, in row order; one warning per column with values it cannot read."""
        check_table_columns(df, self.bundle.schema, source)
        x, found = checked_table_matrix(df, self.bundle.schema)
        for u in found:
            warnings.warn(warning_text(u, len(df), source), UserWarning, stacklevel=2)
        return self.bundle.calibrator(predict(self.bundle.booster, x, threads=_threads(len(x))))

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
        id_col = b.schema.get("id_column")
        if id_col:
            out[id_col] = df[id_col].to_numpy()
        if reasons and len(df):
            contrib = predict(b.booster, x, threads=_threads(len(x)), pred_contrib=True)
            p = b.calibrator(1.0 / (1.0 + np.exp(-contrib.sum(axis=1))))
            out["probability"] = p
            out["score"] = np.rint(p * 100).astype(int)
            out["reasons"] = self._reasons(df, contrib[:, :-1])
        else:
            p = b.calibrator(predict(b.booster, x, threads=_threads(len(x)))) if len(df) else np.array([])
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
        for c in self.bundle.schema["columns"]:
            if c["kind"] == "text":  # free text: one short line, no reason separator inside
                values[c["name"]] = np.array([_short_text(v) for v in values[c["name"]]], dtype=object)
        out = []
        for i in range(len(per)):
            order = np.argsort(-np.abs(per[i]), kind="stable")[:k]
            out.append(" | ".join(f"{names[j]}={values[names[j]][i]!s} ({per[i, j]:+.2f} log-odds)"
                                  for j in order if abs(per[i, j]) > 1e-9))
        return out


def _width(column: dict) -> int:
    if column["kind"] == "numeric":
        return 1 + len(column.get("sentinels", []))
    if column["kind"] == "text":
        return len(column["tokens"]) + 1
    return 3 if column["kind"] == "date" else 1


_TOKEN = r"[^\W_]{2,}"  # runs of letters/digits, length >= 2


def text_tokens(s: pd.Series) -> list[list[str] | None]:
    """Lower-cased word tokens (letters/digits, length ≥ 2) of each value; ``None`` for a missing value."""
    found = s.astype("string").str.lower().str.findall(_TOKEN)
    return [v if isinstance(v, list) else None for v in found.astype(object)]


def _text_features(s: pd.Series, tokens: list[str]) -> list[np.ndarray]:
    """A free-text column's features: 0/1 per schema token, then the token count; NaN where missing."""
    found = text_tokens(s)
    missing = np.array([t is None for t in found], dtype=bool)
    sets = [frozenset(t) if t is not None else frozenset() for t in found]
    cols = []
    for token in tokens:
        v = np.fromiter((token in d for d in sets), dtype=np.float64, count=len(sets))
        v[missing] = np.nan
        cols.append(v)
    cols.append(np.array([np.nan if t is None else float(len(t)) for t in found], dtype=np.float64))
    return cols


def _short_text(v: object, width: int = 40) -> object:
    if not isinstance(v, str) and pd.isna(v):
        return v
    text = " ".join(str(v).split()).replace("|", "/")
    return text if len(text) <= width else text[: width - 1] + "…"


def table_feature_names(schema_columns: list[dict]) -> list[str]:
    """Feature names of :func:`table_matrix`'s columns, in order."""
    names = []
    for c in schema_columns:
        n = c["name"]
        if c["kind"] == "numeric":
            names += [n, *[f"{n}=={s:g}" for s in c.get("sentinels", [])]]
        elif c["kind"] == "date":
            names += [f"{n}__days", f"{n}__month", f"{n}__dayofweek"]
        elif c["kind"] == "text":
            names += [*[f"{n}__has_{t}" for t in c["tokens"]], f"{n}__tokens"]
        else:
            names.append(n)
    return names


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file; a one-line ``ValueError`` when it cannot be read or is empty."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif path.suffix.lower() in (".csv", ".txt", ".gz"):
            df = pd.read_csv(path, sep=None, engine="python") if path.suffix.lower() == ".txt" else pd.read_csv(path)
        else:
            raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"{path}: cannot read the table ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    if len(df) == 0:
        raise ValueError(f"{path}: the file has a header but no rows")
    return df
