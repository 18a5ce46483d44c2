"""The CRM export folder: four tables, read and checked before anything uses them.

Format (Parquet or CSV, timestamps in UTC):

- ``accounts``: ``account_id`` plus firmographic columns named in ``features/icp.yaml``;
- ``leads``: ``lead_id``, ``account_id``, ``created_at`` plus contact columns;
- ``activities``: ``lead_id``, ``activity_type``, ``occurred_at`` and optionally
  ``recorded_at`` (when the CRM learned of the event; defaults to ``occurred_at``);
- ``opportunities``: ``opportunity_id``, ``lead_id``, ``created_at``, ``closed_at``,
  ``stage`` (``open`` / ``closed_won`` / ``closed_lost``), optionally ``amount``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = ["CrmExport", "DataError", "TABLES", "read_export", "read_table"]


class DataError(ValueError):
    """Input data is missing or malformed; the message names the file and column."""


REQUIRED: dict[str, list[str]] = {
    "accounts": ["account_id"],
    "leads": ["lead_id", "account_id", "created_at"],
    "activities": ["lead_id", "activity_type", "occurred_at"],
    "opportunities": ["opportunity_id", "lead_id", "created_at", "closed_at", "stage"],
}
TABLES = tuple(REQUIRED)
TIMESTAMPS: dict[str, list[str]] = {
    "accounts": [],
    "leads": ["created_at"],
    "activities": ["occurred_at", "recorded_at"],
    "opportunities": ["created_at", "closed_at"],
}
ID_COLUMNS: dict[str, list[str]] = {
    "accounts": ["account_id"],
    "leads": ["lead_id", "account_id"],
    "activities": ["lead_id"],
    "opportunities": ["opportunity_id", "lead_id"],
}
STAGES = ("open", "closed_won", "closed_lost")


@dataclass(frozen=True)
class CrmExport:
    """The four tables of a CRM export, validated, ids as strings, timestamps UTC."""

    accounts: pd.DataFrame
    leads: pd.DataFrame
    activities: pd.DataFrame
    opportunities: pd.DataFrame
    source: str = "<memory>"

    @classmethod
    def from_frames(cls, frames: dict[str, pd.DataFrame], source: str = "<memory>") -> CrmExport:
        """Validate a dict of DataFrames keyed like the export's tables.

        ``opportunities`` may be left out (scoring needs none); every other table is
        required.
        """
        tables = {}
        for name in TABLES:
            df = frames.get(name)
            if df is None:
                if name == "opportunities":
                    df = pd.DataFrame({c: [] for c in REQUIRED[name]})
                else:
                    raise DataError(f"{source}: table '{name}' is missing")
            tables[name] = _normalise(df, name, f"{source}/{name}")
        unknown = set(frames) - set(TABLES)
        if unknown:
            raise DataError(f"{source}: unknown table(s) {sorted(unknown)}; expected {list(TABLES)}")
        return cls(**tables, source=source)

    def end(self) -> pd.Timestamp:
        """The end of the data: the latest timestamp in any table."""
        stamps = [self.leads["created_at"].max(), self.activities["occurred_at"].max(),
                  self.opportunities["created_at"].max(), self.opportunities["closed_at"].max()]
        stamps = [s for s in stamps if pd.notna(s)]
        if not stamps:
            raise DataError(f"{self.source}: no timestamps at all; is the export empty?")
        return max(stamps)


def _find(folder: Path, name: str) -> Path:
    for ext in (".parquet", ".csv"):
        p = folder / f"{name}{ext}"
        if p.exists():
            return p
    raise DataError(f"{folder}: missing table '{name}' (expected {name}.parquet or {name}.csv)")


def read_table(path: Path) -> pd.DataFrame:
    """Read one Parquet or CSV file, with a one-line error if it cannot be read."""
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            return pd.read_csv(path, low_memory=False)
    except Exception as exc:  # noqa: BLE001 - pyarrow and pandas raise many types
        raise DataError(f"{path}: cannot read as {path.suffix[1:]} ({type(exc).__name__}: {exc})") from None
    raise DataError(f"{path}: unsupported file type; expected .parquet or .csv")


def read_export(folder: str | Path) -> CrmExport:
    """Read and validate a CRM export folder (see the module docstring for the format)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; expected a CRM export with {', '.join(TABLES)}")
    frames = {name: read_table(_find(folder, name)) for name in TABLES}
    paths = {name: str(_find(folder, name)) for name in TABLES}
    tables = {name: _normalise(df, name, paths[name]) for name, df in frames.items()}
    return CrmExport(**tables, source=str(folder))


def _normalise(df: pd.DataFrame, name: str, where: str) -> pd.DataFrame:
    missing = [c for c in REQUIRED[name] if c not in df.columns]
    if missing:
        raise DataError(f"{where}: missing required column(s) {missing}; found {list(df.columns)}")
    df = df.copy()
    for col in ID_COLUMNS[name]:
        if df[col].isna().any():
            raise DataError(f"{where}: column '{col}' has {int(df[col].isna().sum())} empty id(s)")
        df[col] = df[col].astype(str)
    for col in TIMESTAMPS[name]:
        if col in df.columns:
            df[col] = _to_utc(df[col], f"{where}: column '{col}'")
    if name == "activities":
        if "recorded_at" not in df.columns:
            df["recorded_at"] = df["occurred_at"]
        if df["occurred_at"].isna().any():
            raise DataError(f"{where}: column 'occurred_at' has {int(df['occurred_at'].isna().sum())} empty value(s)")
        df["activity_type"] = df["activity_type"].astype(str)
    if name == "leads":
        if df["created_at"].isna().any():
            raise DataError(f"{where}: column 'created_at' has empty values")
        dupes = df["lead_id"][df["lead_id"].duplicated()]
        if len(dupes):
            raise DataError(f"{where}: duplicate lead_id values, e.g. {dupes.head(3).tolist()}")
    if name == "accounts":
        dupes = df["account_id"][df["account_id"].duplicated()]
        if len(dupes):
            raise DataError(f"{where}: duplicate account_id values, e.g. {dupes.head(3).tolist()}")
    if name == "opportunities":
        df["stage"] = df["stage"].astype(str)
        bad = sorted(set(df["stage"]) - set(STAGES))
        if bad:
            raise DataError(f"{where}: column 'stage' has unknown values {bad[:5]}; expected one of {list(STAGES)}")
    return df


def _to_utc(col: pd.Series, where: str) -> pd.Series:
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return col.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    try:
        parsed = pd.to_datetime(col, utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        sample = col.dropna().astype(str).head(3).tolist()
        raise DataError(f"{where}: expected UTC timestamps, e.g. 2025-01-31T09:00:00Z; got {sample} ({exc})") from None
    return parsed.astype("datetime64[us, UTC]")
