"""Small hand-made flat lead tables for the table tests (imported, not collected)."""

from pathlib import Path

import numpy as np
import pandas as pd

SHARED = Path(__file__).resolve().parents[2] / "shared"
BANK = SHARED / "data" / "bank-marketing" / "bank-additional-full.csv"


def lead_table(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Leads whose conversion depends on age, segment, visits, a sentinel-coded pdays and a yes/no flag.

    Also holds an id column, a constant column, a date column and a column that
    copies the outcome (``call_duration``: known only after the call).
    """
    r = np.random.default_rng(seed)
    age = r.integers(18, 80, n)
    seg = r.choice(["smb", "mid", "ent"], n, p=[0.6, 0.3, 0.1])
    visits = r.poisson(2, n)
    pdays = np.where(r.random(n) < 0.8, 999, r.integers(0, 30, n))
    newsletter = r.choice(["yes", "no"], n)
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(r.integers(0, 365, n), unit="D")
    z = -2.0 + 0.03 * (age - 45) + 0.8 * (seg == "ent") + 0.4 * visits + 1.0 * (pdays != 999) \
        + 0.5 * (newsletter == "yes")
    y = r.random(n) < 1 / (1 + np.exp(-z))
    return pd.DataFrame({
        "lead_id": [f"L{i:05d}" for i in range(n)], "age": age, "segment": seg, "visits": visits, "pdays": pdays,
        "newsletter": newsletter, "created": created.strftime("%Y-%m-%d"), "country": "PT",
        "call_duration": np.where(y, r.integers(200, 900, n), r.integers(0, 150, n)),
        "converted": np.where(y, "yes", "no"),
    })
