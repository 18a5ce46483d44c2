"""What a run read, as MLflow datasets (``mlflow.log_input``): a CRM export folder or a table, its digest and rows.

The Datasets panel of a run then names the export (its folder), a SHA-256 over its
files (``digest``: two runs on the same export show the same one) and, as input tags,
the rows of each table, so a reviewer compares runs without opening artifacts.
"""

from __future__ import annotations

from pathlib import Path

from propensity.core.digests import files_sha256

__all__ = ["log_export_input", "log_folder_input"]


def _source(mlflow, path: Path):
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source

    with warnings.catch_warnings():  # MLflow registers its local source class twice and warns that both match
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        return resolve_dataset_source(str(Path(path).resolve()))


def log_folder_input(mlflow, path: str | Path, name: str, context: str, rows: dict[str, int]) -> str:
    """Log the folder or file ``path`` as an input of the active run; returns its digest (first 16 hex digits)."""
    from mlflow.data.meta_dataset import MetaDataset

    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
    digest = files_sha256(files)[:16]
    dataset = MetaDataset(source=_source(mlflow, path), name=name, digest=digest)
    mlflow.log_input(dataset, context=context, tags={k: str(v) for k, v in rows.items()})
    return digest


def log_export_input(mlflow, folder: str | Path, export, context: str) -> str:
    """Log a CRM export folder (read as ``export``) with the rows of its four tables."""
    rows = {"leads": len(export.leads), "accounts": len(export.accounts),
            "opportunities": len(export.opportunities)}
    arrays = export.__dict__.get("_arrays")
    rows["activities"] = len(arrays) if arrays is not None else len(export.activities)
    return log_folder_input(mlflow, folder, f"crm export {Path(folder).name}", context, rows)
