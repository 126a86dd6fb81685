"""Shared test configuration (offline, headless, quiet) and tiny fixtures used across modules."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")


def make_long(
    series: Mapping[str, np.ndarray], freq: str = "MS", start: str = "2000-01-01"
) -> pd.DataFrame:
    """Long ``unique_id, ds, y`` frame, each series starting at ``start`` on ``freq``."""
    return pd.concat(
        [
            pd.DataFrame(
                {"unique_id": k, "ds": pd.date_range(start, periods=len(v), freq=freq), "y": v}
            )
            for k, v in series.items()
        ],
        ignore_index=True,
    )


@pytest.fixture
def long_frame() -> Callable[..., pd.DataFrame]:
    """The :func:`make_long` builder."""
    return make_long


@pytest.fixture(scope="session")
def state_city():
    """(bottom frame, Hierarchy, all-nodes Y): ``state / city``, 3 cities, 20 quarters."""
    from htsforecast.hierarchy import Hierarchy

    rng = np.random.default_rng(0)
    n = 20
    ds = pd.date_range("2015-01-01", periods=n, freq="QS")
    rows = []
    for s, c in [("A", "x"), ("A", "y"), ("B", "z")]:
        y = 20 + 5 * np.sin(np.arange(n) * np.pi / 2) + rng.normal(0, 1, n).cumsum()
        rows.append(pd.DataFrame({"state": s, "city": c, "ds": ds, "y": y + 10}))
    df = pd.concat(rows, ignore_index=True)
    hier = Hierarchy.from_formula("state / city")
    return df, hier, hier.aggregate(df)
