"""The package's version, recorded in every bundle it writes (``metadata.propensity_version``).

``propensity.__version__`` is this value; modules inside the package read it here,
so none of them imports the package root for it.
"""

from __future__ import annotations

__all__ = ["VERSION"]

VERSION = "0.1.0"  # keep equal to pyproject.toml's version
