"""The table schema: what each input column of a flat table is and how the model sees it.

:func:`propensity.tabular.inference.infer_schema` writes it from the training rows;
the bundle stores it (``bundle.json``'s ``table``) and :mod:`propensity.tabular.matrix`
turns a table into the model matrix by it, at training and at scoring time alike.
It is validated wherever it comes from: unknown keys are errors, as everywhere in
``bundle.json``.

In ``bundle.json`` a column holds only the keys its kind uses (``sentinels`` for
``numeric``, ``categories`` for ``categorical``, ``tokens`` for ``text``), and the
schema only the keys it was given: :meth:`TableSchema.to_json` writes exactly those,
so a bundle read and saved again keeps its layout.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from propensity.scoring.bundle_meta import Finite, Name, unique_values

__all__ = ["ColumnKind", "TableColumn", "TableSchema", "column_width", "feature_names"]

ColumnKind = Literal["numeric", "boolean", "categorical", "date", "text"]


class TableColumn(BaseModel):
    """One input column of a flat table as the model reads it (see :func:`propensity.tabular.matrix.table_matrix`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    kind: ColumnKind
    sentinels: list[Finite] | None = None
    categories: list[str] | None = None
    tokens: list[str] | None = None

    @model_validator(mode="after")
    def _fits_kind(self) -> TableColumn:
        own = {"numeric": "sentinels", "categorical": "categories", "text": "tokens"}.get(self.kind)
        for key in ("sentinels", "categories", "tokens"):
            value = getattr(self, key)
            if key != own and value is not None:
                raise ValueError(f"column {self.name!r} of kind {self.kind!r} takes no '{key}'")
        if own in ("categories", "tokens"):
            values = getattr(self, own)
            if not values:
                raise ValueError(f"column {self.name!r} of kind {self.kind!r} needs a non-empty '{own}' list")
            unique_values(values, f"column {self.name!r}: {own}")
        return self


class TableSchema(BaseModel):
    """The table schema of a flat-table bundle (see :func:`propensity.tabular.inference.infer_schema`).

    ``target``, ``id_column`` and ``time_column`` name those columns;
    ``input_columns`` are the table's columns minus the target (what scoring must
    receive); ``columns`` the kept ones with their kind; ``dropped`` the others with
    the reason; ``features`` the model matrix's column names; ``positive_value`` the
    target value that means converted.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: Name
    id_column: str | None = None
    time_column: str | None = None
    input_columns: list[str]
    columns: Annotated[list[TableColumn], Field(min_length=1)]
    dropped: dict[str, str] = Field(default_factory=dict)
    features: Annotated[list[Name], Field(min_length=1)]
    positive_value: str | bool | int | float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TableSchema:
        names = [c.name for c in self.columns]
        unique_values(names, "columns")
        unique_values(self.features, "features")
        missing = [n for n in names if n not in self.input_columns]
        if missing:
            raise ValueError(f"columns {missing[:5]} are not among input_columns")
        if self.target in self.input_columns:
            raise ValueError(f"the target {self.target!r} is among input_columns")
        return self

    def to_json(self) -> dict:
        """The schema as ``bundle.json`` holds it: only the keys it was given, in the layout's order."""
        return self.model_dump(exclude_unset=True)

    def categorical_positions(self) -> list[int]:
        """Positions of the model matrix's columns that hold category codes."""
        categorical = {c.name for c in self.columns if c.kind == "categorical"}
        return [j for j, name in enumerate(self.features) if name in categorical]


def column_width(column: TableColumn) -> int:
    """How many model-matrix columns one input column becomes."""
    if column.kind == "numeric":
        return 1 + len(column.sentinels or [])
    if column.kind == "text":
        return len(column.tokens or []) + 1
    return 3 if column.kind == "date" else 1


def feature_names(columns: list[TableColumn]) -> list[str]:
    """Names of the model matrix's columns for ``columns``, in order (see :func:`~.matrix.table_matrix`)."""
    names = []
    for c in columns:
        n = c.name
        if c.kind == "numeric":
            names += [n, *[f"{n}=={s:g}" for s in c.sentinels or []]]
        elif c.kind == "date":
            names += [f"{n}__days", f"{n}__month", f"{n}__dayofweek"]
        elif c.kind == "text":
            names += [*[f"{n}__has_{t}" for t in c.tokens or []], f"{n}__tokens"]
        else:
            names.append(n)
    return names
