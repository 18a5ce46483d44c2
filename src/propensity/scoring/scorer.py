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
note per field, and one for the activities of types no engagement signal lists:
:mod:`propensity.scoring.lead_notes`).

Tiers (:mod:`propensity.scoring.tiers`): thresholds, or under a capacity policy
exactly ``min(N, n)`` of the ``n`` open leads scored together are SQL;
:meth:`LeadScorer.score`, :meth:`~LeadScorer.score_chunks` and
:meth:`~LeadScorer.explain` all rank the export's open leads as one pool. One lead
scored on its own (a :class:`LeadInput`, or one lead's one-row frames) has no pool
to rank against and gets the ``tiers.sql`` threshold.

One lead (a :class:`LeadInput`, a dict with ``lead``/``account``/``activities``, or
a dict of one-row DataFrames keyed like the export's tables) takes the one-lead
path, with no DataFrame in the middle (:mod:`propensity.scoring.one_lead`); its
numbers equal the batch path's.

The pieces, in the order a batch goes through them: the input read
(:func:`~propensity.data.export.read_export`, lenient) or checked
(:mod:`propensity.scoring.leadinput`), the cutoffs, ``build_features``, the model
matrix (:mod:`propensity.scoring.encoding`), exact SHAP
(:mod:`propensity.scoring.predictions`), reasons (:mod:`propensity.scoring.reasons`),
tiers and notes. :class:`LeadScorer` only puts them in that order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd

from propensity.core.times import as_of_utc
from propensity.data.export import CrmExport, read_export
from propensity.features.cutoffs import scoring_cutoffs
from propensity.features.pipeline import build_features
from propensity.scoring.bundle import Bundle, load_bundle
from propensity.scoring.bundle_files import BundleKindError, resolve_bundle_uri
from propensity.scoring.encoding import ModelEncoder
from propensity.scoring.lead_notes import (
    export_notes,
    merge_notes,
    type_notes,
    unlisted_events,
    value_notes,
    with_error_rows,
)
from propensity.scoring.leadinput import (
    LeadRows,
    is_one_lead_frames,
    lead_cutoffs,
    lead_export,
    lead_from_frames,
    lead_rows,
)
from propensity.scoring.one_lead import OneLeadScorer
from propensity.scoring.predictions import contributions, rank_keys
from propensity.scoring.reasons import ReasonGroups, assemble, family_scores, grades, probability_points
from propensity.scoring.schemas import LeadInput, LeadScore, ReasonOut, reason_out
from propensity.scoring.shap_table import shap_table
from propensity.scoring.tiers import TierTally, capacity_sql, pool_sql, tier_names

__all__ = ["LeadInput", "LeadScore", "LeadScorer", "ReasonOut"]

FEATURE_BLOCK = 500_000  # score_chunks builds features for this many leads at once (one pass over the activities)

_NOT_SCORABLE = "it was created after that time or already has an opportunity"


class LeadScorer:
    """Scores leads with a trained bundle. Stateless after loading: safe across threads.

    Calls from many threads run side by side except inside LightGBM, which one
    thread enters at a time (:mod:`propensity.core.native`); a stress test in the
    suite scores thousands of leads from 8 threads against one thread's results.

    ``one_lead_path``: score one lead without DataFrames when the bundle's features
    are the configs' own (the default); ``False`` sends it through
    ``build_features`` as a batch of one, with the same numbers.
    """

    def __init__(self, bundle: Bundle, one_lead_path: bool = True):
        self.bundle = bundle
        self.groups = ReasonGroups.from_spec(bundle.spec)
        self.encoder = ModelEncoder(bundle)
        shap_table(bundle.booster)  # tabulate a shallow model's trees now, not on the first lead's call
        self.one_lead = OneLeadScorer.for_bundle(bundle, self.encoder, self.groups) if one_lead_path else None
        # only the columns the features read: a CRM row has dozens, and pandas pays per column
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
        before LightGBM parses anything, and raises :class:`~propensity.core.errors.BundleError` naming the
        damaged or invalid file. Loading the same registered model with
        ``mlflow.pyfunc.load_model``, ``mlflow models serve`` or Spark
        (:func:`propensity.spark.score_spark`) runs the Python entry file logged with
        it, so whoever can write to the MLflow artifact store can run code there: for
        a store you do not fully trust, load with this method. The digests catch
        damage and edits; they are no signature (whoever can rewrite the files can
        rewrite the digests, and such a file still reaches LightGBM's native parser).
        A flat-table bundle is refused with a
        :class:`~propensity.scoring.bundle_files.BundleKindError`.
        """
        try:
            return cls(load_bundle(resolve_bundle_uri(uri)))
        except BundleKindError as exc:
            raise BundleKindError(f"{uri}: a model trained on a flat table; score it with a table file "
                                  "(propensity score --data FILE.csv) or TableScorer", exc.kind) from None

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

        A dict of DataFrames holding exactly one lead is scored on the one-lead path
        (a service's usual call) and still returns a one-row DataFrame (no rows when
        the lead was created at or after ``as_of``; a :class:`LeadInput` gets a
        ``ValueError`` then).
        """
        t = None if as_of is None else as_of_utc(as_of)
        if isinstance(data, dict) and "lead" in data:
            data = LeadInput.model_validate(data)
        if isinstance(data, LeadInput):
            rows = lead_rows(data.lead, data.account, data.activities, t, self.bundle.icp)
            if not rows.scorable:
                raise ValueError(f"lead {rows.lead_id!r} cannot be scored as of {as_of}: {_NOT_SCORABLE}")
            if self.one_lead is not None:
                return self.one_lead.score(rows, stacklevel=3).lead_score()
            return _lead_score(self._score_lead_rows(rows, detail=True).iloc[0])
        if isinstance(data, dict) and is_one_lead_frames(data):
            lead, account, acts = lead_from_frames(data, self._lead_columns, self._account_columns)
            rows = lead_rows(lead, account, acts, t, self.bundle.icp)
            if self.one_lead is not None and rows.scorable:
                return self.one_lead.score(rows, stacklevel=3).frame()
            return self._score_lead_rows(rows, detail=False)  # no rows when not scorable
        export = self._read(data)
        cut = scoring_cutoffs(export, t)
        frame = build_features(export, cut, self.bundle.icp, self.bundle.engagement)
        x, notes = self.encoder.encode(frame)
        notes = value_notes(notes, export, self.bundle.icp, cut)
        notes = type_notes(notes, unlisted_events(export, self.bundle.engagement), cut)
        sql = None
        if self.bundle.tiers.capacity is not None:
            sql = capacity_sql(*rank_keys(self.bundle.booster, self.bundle.calibrator, x), self.bundle.tiers)
        out = self._table(frame, self._contributions(x), export_notes(notes, export, cut), detail=False,
                          sql_leads=sql)
        return with_error_rows(out, export)

    def score_chunks(self, data: Any, as_of: pd.Timestamp | str | None = None, chunk_size: int = 50_000,
                     values: bool = False):
        """Score the open leads of ``data`` in chunks of ``chunk_size`` leads.

        ``values``: add each lead's feature values (``feature:<name>``) and each reason
        source's points (``points:<source>``), as the score history stores them.

        Yields ``(n_leads_total, DataFrame)`` pairs; the chunks together equal
        :meth:`score` on the same data, in the same order. Under a capacity tier
        policy a first pass computes every probability (features and ``predict``,
        no SHAP) to rank all leads as one pool (see :mod:`propensity.scoring.tiers`), not per chunk.
        """
        export = self._read(data)
        cut = scoring_cutoffs(export, None if as_of is None else as_of_utc(as_of))
        # Features are built per block of many chunks: each build passes over every
        # activity of the export, so 50k-lead builds would repeat that pass 20 times
        # per million leads. SHAP, reasons and output stay per chunk.
        block = max(chunk_size, FEATURE_BLOCK // chunk_size * chunk_size)
        blocks = [cut.iloc[s:s + block].reset_index(drop=True) for s in range(0, max(len(cut), 1), block)]
        sql = self._pool_sql(export, blocks)
        unlisted = unlisted_events(export, self.bundle.engagement)
        total = len(cut) + len(export.rejected)
        start = 0
        for b, rows in enumerate(blocks):
            frame = build_features(export, rows, self.bundle.icp, self.bundle.engagement)
            for s in range(0, max(len(rows), 1), chunk_size):
                part = rows.iloc[s:s + chunk_size].reset_index(drop=True)
                mask = None if sql is None else sql[start:start + len(part)]
                start += len(part)
                out = self._score_cutoffs(export, part, detail=False, sql_leads=mask, unlisted=unlisted,
                                          frame=frame.iloc[s:s + chunk_size].reset_index(drop=True), values=values)
                last = b == len(blocks) - 1 and s + chunk_size >= len(rows)
                yield total, (with_error_rows(out, export) if last else out)

    def explain(self, data: Any, lead_id: str, as_of: pd.Timestamp | str | None = None) -> LeadScore:
        """Score one lead of an export and return its full explanation.

        The lead's tier is the one :meth:`score` gives it on the same export: under a
        capacity policy every open lead of the export is ranked (``predict`` only, no
        SHAP) and the lead is SQL when it is among the ``leads_per_week`` first.
        """
        export = self._read(data)
        every = scoring_cutoffs(export, None if as_of is None else as_of_utc(as_of))
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
        x, notes = self.encoder.encode(frame)
        return self._table(frame, self._contributions(x), notes, detail, sql_threshold)

    def tier_summary(self, scores: pd.DataFrame) -> dict:
        """The tier policy applied to ``scores``: SQL count, threshold, expected conversions.

        See :meth:`propensity.scoring.tiers.TierTally.summary`; for chunks, add each
        to one :class:`~propensity.scoring.tiers.TierTally` instead.
        """
        tally = TierTally(self.bundle.tiers)
        tally.add(scores)
        return tally.summary()

    # ------------------------------------------------------------------ steps

    def _read(self, data: Any) -> CrmExport:
        """The export to score; lenient: a bad row costs its lead a note or an error row, never the whole batch."""
        if isinstance(data, CrmExport):
            return data
        if isinstance(data, (str, Path)):
            return read_export(data, lenient=True)
        if isinstance(data, dict):
            return CrmExport.from_frames(data, lenient=True)
        raise TypeError(f"cannot score {type(data).__name__}; pass a CRM export folder, a dict of DataFrames "
                        "keyed accounts/leads/activities, or a LeadInput")

    def _score_lead_rows(self, rows: LeadRows, detail: bool) -> pd.DataFrame:
        """One lead's checked rows through the batch path (its one-lead export); no rows when not scorable."""
        export = lead_export(rows, self.bundle.icp)
        return self._score_cutoffs(export, lead_cutoffs(rows), detail=detail, extra_notes=rows.notes)

    def _score_cutoffs(self, export: CrmExport, cut: pd.DataFrame, detail: bool,
                       extra_notes: list[str] | None = None, sql_leads: np.ndarray | None = None,
                       unlisted: Any = False, frame: pd.DataFrame | None = None, values: bool = False) -> pd.DataFrame:
        """Score the ``cut`` rows of ``export``; ``unlisted``: :func:`unlisted_events`, when already known;
        ``frame``: the rows' features, when already built."""
        b = self.bundle
        if frame is None:
            frame = build_features(export, cut, b.icp, b.engagement)
        x, notes = self.encoder.encode(frame)
        if extra_notes:
            notes = [merge_notes(extra_notes, n) for n in notes]
        notes = value_notes(notes, export, b.icp, cut)
        notes = type_notes(notes, unlisted_events(export, b.engagement) if unlisted is False else unlisted, cut)
        notes = export_notes(notes, export, cut)
        return self._table(frame, self._contributions(x), notes, detail, sql_leads=sql_leads, values=values)

    def _pool_sql(self, export: CrmExport, parts: list[pd.DataFrame]) -> np.ndarray | None:
        """The SQL leads of the cutoffs ``parts`` (in order) ranked as one pool; None without a capacity policy."""
        b = self.bundle
        if b.tiers.capacity is None:
            return None

        def keys(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:  # features and predict, no SHAP
            x, _ = self.encoder.encode(build_features(export, part, b.icp, b.engagement))
            return rank_keys(b.booster, b.calibrator, x)

        return pool_sql((keys(part) for part in parts if len(part)), b.tiers)

    def _contributions(self, x: np.ndarray) -> np.ndarray:
        return contributions(self.bundle.booster, x, len(self.bundle.spec))

    def _table(self, frame: pd.DataFrame, contrib: np.ndarray, notes: list[list[str]], detail: bool,
               sql_threshold: float | None = None, sql_leads: np.ndarray | None = None,
               values: bool = False) -> pd.DataFrame:
        """The output table; SQL rows are ``sql_leads`` when given, else ``p >= sql_threshold`` (or ``sql``)."""
        b = self.bundle
        p, pts, lo = probability_points(contrib, b.calibrator, self.groups, with_log_odds=True)
        fit, eng = family_scores(contrib, self.groups)
        table = assemble(self.groups, frame, pts, b.top_k, log_odds=lo)
        out = pd.DataFrame({"lead_id": frame["lead_id"].to_numpy()})
        if "cutoff" in frame.columns:
            out["cutoff"] = frame["cutoff"].to_numpy()
        out["probability"] = p
        out["score"] = np.rint(p * 100).astype(int)
        if sql_leads is None:
            sql_leads = p >= (b.tiers.sql if sql_threshold is None else sql_threshold)
        out["tier"] = tier_names(p, sql_leads, b.tiers)
        if detail:
            rows = [table.row(i, self.groups) for i in range(len(frame))]
            out["positive"] = [[reason_out(r) for r in pos] for pos, _ in rows]
            out["negative"] = [[reason_out(r) for r in neg] for _, neg in rows]
            out["note_list"] = notes
        out["reasons"] = table.joined.astype(object)
        out["fit_score"] = fit
        out["engagement_score"] = eng
        out["grade"] = grades(fit, eng)
        out["notes"] = ["; ".join(n) for n in notes]
        if values:  # the score history's columns (propensity.monitoring.history)
            extra = {f"feature:{f.name}": frame[f.name].to_numpy() for f in b.spec}
            extra.update({f"points:{s}": pts[:, i] for i, s in enumerate(self.groups.sources)})
            out = pd.concat([out, pd.DataFrame(extra, index=out.index)], axis=1)
        return out


def _lead_score(row: pd.Series) -> LeadScore:
    return LeadScore(lead_id=row["lead_id"], probability=row["probability"], score=row["score"], tier=row["tier"],
                     positive=row["positive"], negative=row["negative"], fit_score=row["fit_score"],
                     engagement_score=row["engagement_score"], grade=row["grade"], notes=row["note_list"])
