"""One-line messages for pydantic validation errors: the file, the field and what was expected."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ValidationError

__all__ = ["validation_message"]


def validation_message(source: str | Path, model: type[BaseModel], err: ValidationError) -> str:
    """``"<source>: <dotted.field>: <what was expected>"`` for the first problem, with the count of the others.

    An unknown key lists the keys allowed at that place instead, so a typo shows its fix.
    """
    first = err.errors()[0]
    loc = tuple(first["loc"])
    where = ".".join(str(p) for p in loc) or "(top level)"
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, loc)
        return f"{source}: unknown key '{where}'; allowed keys here: {', '.join(allowed)}"
    msg = re.sub(r"^Value error, ", "", first["msg"])
    more = f" (and {len(err.errors()) - 1} more problem(s))" if len(err.errors()) > 1 else ""
    return f"{source}: {where}: {msg}{more}" if loc else f"{source}: {msg}{more}"


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names allowed at ``loc`` inside ``model`` (for 'did you mean' messages)."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        if current is None or isinstance(part, int):
            continue
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = _model_in(field.annotation)
    return sorted(current.model_fields) if current else []


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found:
            return found
    return None
