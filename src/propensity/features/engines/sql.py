"""The feature table as one SQL query, written once and transpiled by sqlglot to each warehouse's dialect.

:func:`feature_sql` compiles the feature spec (``features/icp.yaml``,
``features/engagement.yaml``) into a query over four named relations:

=============  ==========================================================================
relation       columns the query reads
=============  ==========================================================================
cutoffs        ``lead_id``, ``cutoff`` (timestamp), and any extra columns to carry (label)
activities     ``lead_id``, ``activity_type``, ``occurred_at``, ``recorded_at`` (timestamps;
               a null ``recorded_at`` counts from ``occurred_at``)
leads          ``lead_id``, ``account_id``, ``created_at`` and the columns the ICP reads
accounts       ``account_id`` and the columns the ICP reads
=============  ==========================================================================

It returns one row per cutoff row: ``lead_id``, ``cutoff``, the extra columns, then
every feature of :func:`~propensity.features.spec.build_feature_spec` in spec order,
with the definitions of :func:`~propensity.features.pipeline.build_features`.

Times are converted once, at the boundary, to integer microseconds since the epoch
(as the Python engines hold them), so no dialect's interval or time-zone rules take
part. The plan is the direct one: each distinct (lead, cutoff) is joined to its
lead's events under the time contract (``occurred_at < T`` and ``recorded_at <
T``) and aggregated with ``CASE`` per signal; work grows with cutoff rows x events
per lead, which a warehouse or Spark partitions by lead.

The query is written in DuckDB's dialect and transpiled by sqlglot; the only
function no dialect of sqlglot maps everywhere (timestamp to epoch µs) is
rewritten per dialect. Values the SQL reads differently from the Python engines
(documented in ``docs/scaling.md``): text is trimmed of spaces only (Python strips
any whitespace), and a ``range`` column's value is ``TRY_CAST`` to a double (a
boolean reads as 0/1, not unknown; Snowflake's and Postgres' casts fail on text
that is no number instead of giving unknown).

:func:`features_duckdb` runs the DuckDB form on an export in memory (the tests'
second implementation of every definition and the benchmark's peer).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from propensity.config import EngagementConfig, IcpConfig
from propensity.core import names
from propensity.core.times import DAY_US
from propensity.features.spec import build_feature_spec

__all__ = ["DIALECTS", "TABLES", "cutoffs_sql", "feature_sql", "features_duckdb"]

DIALECTS = ("duckdb", "spark", "snowflake", "bigquery", "postgres")
TABLES = ("cutoffs", "activities", "leads", "accounts")

_DAY = f"{DAY_US}.0"
_FINITE = "1.7976931348623157e308"  # the largest double: a range value outside +-it (inf) or NaN is unknown
_TABLE_NAME = re.compile(r"[A-Za-z_][\w$]*(\.[A-Za-z_][\w$]*){0,2}")
_COLUMN_NAME = re.compile(r"[A-Za-z_]\w*")
_NO_ICP = IcpConfig.model_construct(criteria=[])  # no criteria: the spec's engagement features only


def feature_sql(icp: IcpConfig | None, engagement: EngagementConfig, dialect: str = "duckdb",
                tables: dict[str, str] | None = None, extra_columns: Iterable[str] = (), pretty: bool = True,
                heavy_lead_events: int | None = None, salts: int = 1) -> str:
    """The feature table of the spec as one SQL query in ``dialect`` (one of :data:`DIALECTS`).

    ``tables`` maps each of :data:`TABLES` to the relation to read (default: the same
    name; ``catalog.schema.table`` is allowed); ``extra_columns`` are carried from
    ``cutoffs`` after ``cutoff`` (e.g. ``label``). ``icp=None`` leaves out the fit
    features and ``accounts``. Raises ``ValueError`` for an unknown dialect, table
    or a name that is no plain identifier.

    ``heavy_lead_events`` with ``salts`` > 1 salts the join for skew: a lead with more
    activities than that (a bot) has its events split into ``salts`` parts by day
    (``day mod salts``) and its cutoff rows repeated once per part, so its join runs
    as ``salts`` tasks instead of one; each part is aggregated, then the parts are
    added up (counts and decay summed, days since the least, distinct days summed:
    a day lies in one part), so every value is the same (decay up to the order of
    summation). A bot whose events fall on one day stays one task.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"dialect: expected one of {list(DIALECTS)}; got {dialect!r}")
    rel = {t: t for t in TABLES}
    for key, value in (tables or {}).items():
        if key not in TABLES:
            raise ValueError(f"tables: expected keys among {list(TABLES)}; got {key!r}")
        if not _TABLE_NAME.fullmatch(value):
            raise ValueError(f"tables[{key!r}]: expected a table name such as schema.table; got {value!r}")
        rel[key] = value
    extras = list(extra_columns)
    for col in extras:
        if not _COLUMN_NAME.fullmatch(col) or col in ("lead_id", "cutoff"):
            raise ValueError(f"extra_columns: expected plain column names other than lead_id, cutoff; got {col!r}")
    salting = None
    if heavy_lead_events is not None and salts > 1:
        salting = (int(heavy_lead_events), int(salts))
    text = _duckdb_query(icp, engagement, rel, extras, salting)
    return _transpile(text, dialect, pretty)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _num(x: float) -> str:
    return repr(float(x))


def _types(types: Iterable[str]) -> str:
    return ", ".join(_lit(t) for t in sorted(set(types)))


def _duckdb_query(icp: IcpConfig | None, engagement: EngagementConfig, rel: dict[str, str], extras: list[str],
                  salting: tuple[int, int] | None = None) -> str:
    windows = engagement.windows_days
    longest = max(windows)
    aggs: list[str] = []
    for s in engagement.signals:
        is_s = f"activity_type IN ({_types(s.activity_types)})"
        for w in windows:
            aggs.append(f"COUNT(CASE WHEN {is_s} AND age <= {w * DAY_US} THEN 1 END) "
                        f"AS {names.events_in_window(s.name, w)}")
        aggs.append(f"MIN(CASE WHEN {is_s} THEN age END) AS {names.days_since(s.name)}")
        aggs.append(f"SUM(CASE WHEN {is_s} THEN POWER(0.5, (CAST(age AS DOUBLE) / {_DAY}) / "
                    f"{_num(s.half_life_days)}) END) AS {names.decay(s.name)}")
    aggs.append(f"COUNT(DISTINCT CASE WHEN age <= {longest * DAY_US} THEN occ_day END) AS {names.active_days(longest)}")
    aggs.append(f"MIN(age) AS {names.DAYS_SINCE_ANY}")

    out = {}
    for s in engagement.signals:
        for w in windows:
            out[names.events_in_window(s.name, w)] = "count"
        out[names.days_since(s.name)] = "age"
        out[names.decay(s.name)] = "sum"
    out[names.active_days(longest)] = "count"
    out[names.DAYS_SINCE_ANY] = "age"

    fit = _fit_columns(icp) if icp is not None else {}
    select = ["c.lead_id AS lead_id", "c.cutoff AS cutoff", *(f"c.{col} AS {col}" for col in extras)]
    spec = build_feature_spec(icp, engagement) if icp is not None else build_feature_spec(_NO_ICP, engagement)
    for f in spec:
        if f.family == "fit":
            select.append(f"{fit[f.name]} AS {f.name}")
        elif f.name == names.LEAD_AGE:
            select.append(f"CAST(EPOCH_US(c.cutoff) - EPOCH_US(l.created_at) AS DOUBLE) / {_DAY} AS {f.name}")
        elif out[f.name] == "count":
            select.append(f"CAST(COALESCE(e.{f.name}, 0) AS DOUBLE) AS {f.name}")
        elif out[f.name] == "sum":
            select.append(f"COALESCE(e.{f.name}, 0.0) AS {f.name}")
        else:
            select.append(f"CAST(e.{f.name} AS DOUBLE) / {_DAY} AS {f.name}")
    accounts = f"\nLEFT JOIN {rel['accounts']} AS a ON a.account_id = l.account_id" if icp is not None and any(
        c.table == "accounts" for c in icp.criteria) else ""
    sep = ",\n  "
    if salting is not None:
        events = _salted_events(rel, aggs, out, *salting)
    else:
        events = f"""lead_events AS (
  SELECT lead_id, activity_type, EPOCH_US(occurred_at) AS occ,
         COALESCE(EPOCH_US(recorded_at), EPOCH_US(occurred_at)) AS rec
  FROM {rel['activities']}
), seen AS (
  SELECT r.lead_id, r.t, ev.activity_type, r.t - ev.occ AS age, FLOOR(ev.occ / {_DAY}) AS occ_day
  FROM cutoff_times AS r JOIN lead_events AS ev ON ev.lead_id = r.lead_id AND ev.occ < r.t AND ev.rec < r.t
), engagement AS (
  SELECT lead_id, t,
  {sep.join(aggs)}
  FROM seen GROUP BY lead_id, t
)"""
    return f"""WITH cutoff_times AS (
  SELECT DISTINCT lead_id, EPOCH_US(cutoff) AS t FROM {rel['cutoffs']}
), {events}
SELECT
  {sep.join(select)}
FROM {rel['cutoffs']} AS c
JOIN {rel['leads']} AS l ON l.lead_id = c.lead_id{accounts}
LEFT JOIN engagement AS e ON e.lead_id = c.lead_id AND e.t = EPOCH_US(c.cutoff)"""


def _salted_events(rel: dict[str, str], aggs: list[str], kinds: dict[str, str], heavy: int, salts: int) -> str:
    """The ``lead_events .. engagement`` relations of the salted plan (see :func:`feature_sql`)."""
    sep = ",\n  "
    day = f"CAST(FLOOR(EPOCH_US(a.occurred_at) / {_DAY}) AS BIGINT)"
    values = ", ".join(f"({i})" for i in range(salts))
    combine = [f"{'MIN' if kind == 'age' else 'SUM'}({name}) AS {name}" for name, kind in kinds.items()]
    return f"""heavy AS (
  SELECT lead_id FROM {rel['activities']} GROUP BY lead_id HAVING COUNT(*) > {heavy}
), lead_events AS (
  SELECT a.lead_id, a.activity_type, EPOCH_US(a.occurred_at) AS occ,
         COALESCE(EPOCH_US(a.recorded_at), EPOCH_US(a.occurred_at)) AS rec,
         CASE WHEN h.lead_id IS NULL THEN 0 ELSE (({day} % {salts}) + {salts}) % {salts} END AS salt
  FROM {rel['activities']} AS a LEFT JOIN heavy AS h ON h.lead_id = a.lead_id
), salted_times AS (
  SELECT r.lead_id, r.t, s.salt FROM cutoff_times AS r LEFT JOIN heavy AS h ON h.lead_id = r.lead_id
  JOIN (VALUES {values}) AS s(salt) ON s.salt = 0 OR h.lead_id IS NOT NULL
), seen AS (
  SELECT r.lead_id, r.t, r.salt, ev.activity_type, r.t - ev.occ AS age, FLOOR(ev.occ / {_DAY}) AS occ_day
  FROM salted_times AS r JOIN lead_events AS ev
    ON ev.lead_id = r.lead_id AND ev.salt = r.salt AND ev.occ < r.t AND ev.rec < r.t
), parts AS (
  SELECT lead_id, t, salt,
  {sep.join(aggs)}
  FROM seen GROUP BY lead_id, t, salt
), engagement AS (
  SELECT lead_id, t,
  {sep.join(combine)}
  FROM parts GROUP BY lead_id, t
)"""


def _fit_columns(icp: IcpConfig) -> dict[str, str]:
    """Each fit feature's SQL expression, by the rules of ``features/rules.py`` (see the module note)."""
    out: dict[str, str] = {}
    for c in icp.criteria:
        col = f"{'a' if c.table == 'accounts' else 'l'}.\"{c.column}\""
        if c.kind == "range":
            num = f"TRY_CAST({col} AS DOUBLE)"
            value = f"CASE WHEN {num} BETWEEN -{_FINITE} AND {_FINITE} THEN {num} END"
            lo = "" if c.min is None else f" AND {num} >= {_num(c.min)}"
            hi = "" if c.max is None else f" AND {num} <= {_num(c.max)}"
            match = (f"CASE WHEN NOT ({num} BETWEEN -{_FINITE} AND {_FINITE}) OR {num} IS NULL THEN NULL "
                     f"WHEN TRUE{lo}{hi} THEN 1.0 ELSE 0.0 END")
        else:
            value = f"NULLIF(TRIM(CAST({col} AS VARCHAR)), '')"
            allowed = _types(v.strip().lower() for v in c.values or ())
            match = (f"CASE WHEN {value} IS NULL THEN NULL WHEN LOWER({value}) IN ({allowed}) THEN 1.0 ELSE 0.0 END"
                     if c.kind == "in" else "")
        if c.kind != "value":
            out[names.fit_match(c.name)] = f"CAST({match} AS DOUBLE)"
        if c.raw:
            out[names.fit_value(c.name)] = value
    return out


def _transpile(text: str, dialect: str, pretty: bool) -> str:
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(text, read="duckdb")

    def epoch_us(node: exp.Expression) -> exp.Expression:
        if not (isinstance(node, exp.Anonymous) and node.name.upper() == "EPOCH_US"):
            return node
        (arg,) = node.expressions
        if dialect == "duckdb":
            return node
        if dialect == "snowflake":
            return exp.Anonymous(this="DATE_PART", expressions=[exp.var("EPOCH_MICROSECOND"), arg])
        if dialect == "postgres":
            return sqlglot.parse_one("CAST(EXTRACT(EPOCH FROM x) * 1000000 AS BIGINT)", read="postgres").transform(
                lambda n: arg.copy() if isinstance(n, exp.Column) and n.name == "x" else n)
        return exp.UnixMicros(this=arg)  # spark, bigquery: UNIX_MICROS

    return tree.transform(epoch_us).sql(dialect=dialect, pretty=pretty)


def features_duckdb(export, cutoffs: pd.DataFrame, icp: IcpConfig | None, engagement: EngagementConfig,
                    threads: int | None = None, heavy_lead_events: int | None = None, salts: int = 1) -> pd.DataFrame:
    """The feature table of ``cutoffs`` computed by the DuckDB form of :func:`feature_sql`, rows in input order.

    ``export`` is a :class:`~propensity.data.export.CrmExport` (its pandas tables are
    registered with DuckDB as they are). Columns and dtypes follow ``build_features``:
    numeric features float64 with NaN for unknown, categorical ones object.
    ``heavy_lead_events``, ``salts``: the salted plan of :func:`feature_sql`.
    """
    import duckdb

    extras = [c for c in cutoffs.columns if c not in ("lead_id", "cutoff")]
    query = feature_sql(icp, engagement, "duckdb", tables={"cutoffs": "cutoffs_in"},
                        extra_columns=[*extras, "__row"], pretty=False, heavy_lead_events=heavy_lead_events,
                        salts=salts)
    rows = cutoffs.assign(__row=np.arange(len(cutoffs), dtype=np.int64))
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        con.register("cutoffs_in", rows)
        con.register("leads", export.leads)
        con.register("accounts", export.accounts)
        con.register("activities", export.activities)
        got = con.execute(f"SELECT * FROM ({query}) ORDER BY __row").df()
    finally:
        con.close()
    got = got.drop(columns="__row").reset_index(drop=True)
    got["cutoff"] = cutoffs["cutoff"].reset_index(drop=True)
    for col in extras:
        got[col] = cutoffs[col].reset_index(drop=True)
    spec = build_feature_spec(icp if icp is not None else _NO_ICP, engagement)
    for f in spec:
        if f.kind == "categorical":
            got[f.name] = pd.Series([None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v
                                     for v in got[f.name]], dtype=object)
        else:
            got[f.name] = got[f.name].astype(np.float64)
    got["lead_id"] = got["lead_id"].astype(object)
    return got



def cutoffs_sql(dialect: str = "duckdb", labelled: bool = True, max_lead_age_days: int | None = None,
                horizon_days: int | None = None, tables: dict[str, str] | None = None, pretty: bool = True) -> str:
    """The cutoff rows as SQL: the open leads at each time of a relation ``cutoff_times(cutoff)``.

    The rules of :mod:`propensity.features.cutoffs`: a lead has a row at ``T`` when it
    was created before ``T`` and has no opportunity created before ``T``.
    ``labelled`` (training snapshots): also ``T - max_lead_age_days <= created_at``, and
    ``label`` is 1 when a ``closed_won`` opportunity of the lead has ``T <= closed_at <
    T + horizon_days``. Otherwise (scoring as of one time): ``lead_id, cutoff`` only.
    ``tables`` maps ``leads``, ``opportunities`` and ``cutoff_times`` to the relations to read.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"dialect: expected one of {list(DIALECTS)}; got {dialect!r}")
    rel = {t: t for t in ("leads", "opportunities", "cutoff_times")}
    for key, value in (tables or {}).items():
        if key not in rel or not _TABLE_NAME.fullmatch(value):
            raise ValueError(f"tables: expected leads, opportunities or cutoff_times = a table name; got {key}={value}")
        rel[key] = value
    if labelled and (max_lead_age_days is None or horizon_days is None):
        raise ValueError("cutoffs_sql: labelled rows need max_lead_age_days and horizon_days")
    open_at = f"""SELECT l.lead_id AS lead_id, d.cutoff AS cutoff, EPOCH_US(d.cutoff) AS t
  FROM {rel['leads']} AS l CROSS JOIN {rel['cutoff_times']} AS d
  LEFT JOIN (SELECT lead_id, MIN(EPOCH_US(created_at)) AS first_us FROM {rel['opportunities']}
             WHERE created_at IS NOT NULL GROUP BY lead_id) AS f ON f.lead_id = l.lead_id
  WHERE EPOCH_US(l.created_at) < EPOCH_US(d.cutoff) AND (f.first_us IS NULL OR f.first_us >= EPOCH_US(d.cutoff))"""
    if not labelled:
        text = f"SELECT lead_id, cutoff FROM ({open_at}) AS r"
    else:
        text = f"""WITH open_rows AS (
  {open_at}
    AND EPOCH_US(l.created_at) >= EPOCH_US(d.cutoff) - {int(max_lead_age_days) * DAY_US}
), won AS (
  SELECT lead_id, EPOCH_US(closed_at) AS closed FROM {rel['opportunities']}
  WHERE stage = 'closed_won' AND closed_at IS NOT NULL
)
SELECT r.lead_id AS lead_id, r.cutoff AS cutoff,
  CAST(MAX(CASE WHEN w.closed IS NULL THEN 0 ELSE 1 END) AS TINYINT) AS label
FROM open_rows AS r
LEFT JOIN won AS w ON w.lead_id = r.lead_id AND w.closed >= r.t AND w.closed < r.t + {int(horizon_days) * DAY_US}
GROUP BY r.lead_id, r.cutoff"""
    return _transpile(text, dialect, pretty)
