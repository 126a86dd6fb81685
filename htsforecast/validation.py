"""Input checks done once, at the boundary.

Every check raises :class:`~htsforecast.errors.DataError` with a message that names the offending
column and shows a few of the offending rows, plus a hint.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from htsforecast.errors import DataError

__all__ = [
    "require_columns",
    "check_target",
    "to_datetime",
    "check_on_freq",
    "check_gaps",
    "format_examples",
]

_MAX_EXAMPLES = 5


def format_examples(items: Sequence[object], max_items: int = _MAX_EXAMPLES) -> str:
    """Format the first few offending items for an error message."""
    items = list(items)
    shown = ", ".join(str(x) for x in items[:max_items])
    more = f" (and {len(items) - max_items} more)" if len(items) > max_items else ""
    return f"{shown}{more}"


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str = "data") -> None:
    """Raise if any of ``columns`` is missing from ``df``."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(df).__name__}.")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{what} is missing column(s) {format_examples(missing)}; "
            f"it has {format_examples(list(df.columns), 12)}."
        )


def check_target(df: pd.DataFrame, target_col: str, series: np.ndarray | None = None) -> np.ndarray:
    """Raise if the target column is not numeric or holds NaN / inf; return it as float64.

    ``series`` (one label per row), when given, lets the message name the offending series.
    """
    col = df[target_col]
    if not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)):
        raise DataError(
            f"target column '{target_col}' must be numeric, got dtype {col.dtype}. "
            "Convert it with pd.to_numeric first."
        )
    values = col.to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        where = "" if series is None else f" in series {format_examples(pd.unique(series[bad]))}"
        raise DataError(
            f"target column '{target_col}' has {int(bad.sum())} NaN/inf value(s){where}, at "
            f"row(s) {format_examples(df.index[bad])}. Impute or drop them; htsforecast never "
            "fills them silently."
        )
    return values


def to_datetime(df: pd.DataFrame, time_col: str) -> pd.Series:
    """Return ``df[time_col]`` as datetime64, raising a clear error if it cannot be parsed."""
    col = df[time_col]
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_datetime64_any_dtype(col):
        raise DataError(
            f"time column '{time_col}' holds numbers ({col.dtype}), not dates; convert it first, "
            f"e.g. pd.to_datetime(df['{time_col}'].astype(str), format='%Y') for years."
        )
    if pd.api.types.is_datetime64_any_dtype(col):
        out = col
    else:
        if isinstance(col.dtype, pd.PeriodDtype):
            return col.dt.to_timestamp()
        try:
            out = pd.to_datetime(col)
        except (ValueError, TypeError) as exc:
            raise DataError(f"time column '{time_col}' cannot be parsed as dates: {exc}") from None
    bad = df.index[out.isna().to_numpy()]
    if len(bad):
        raise DataError(
            f"time column '{time_col}' has {len(bad)} missing date(s), at row(s) "
            f"{format_examples(bad)}."
        )
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_localize(None)
    return out


def check_on_freq(dates: pd.Series, freq: str, time_col: str) -> pd.DatetimeIndex:
    """Check every date lies on ``freq``'s grid and return that grid (min..max).

    Raises
    ------
    DataError
        If ``freq`` is not a pandas offset alias or some dates are not on the grid.
    """
    uniq = pd.DatetimeIndex(pd.unique(dates)).sort_values()
    try:
        grid = pd.date_range(uniq[0], uniq[-1], freq=freq)
    except (ValueError, TypeError) as exc:
        raise DataError(f"freq={freq!r} is not a valid pandas frequency: {exc}") from None
    if len(grid) == 0 or grid[0] != uniq[0]:
        raise DataError(
            f"time column '{time_col}': the first date {uniq[0].date()} is not on frequency "
            f"{freq!r} (e.g. use 'MS' for month starts, 'M'/'ME' for month ends)."
        )
    off = uniq[~uniq.isin(grid)]
    if len(off):
        raise DataError(
            f"time column '{time_col}' has {len(off)} date(s) not on frequency {freq!r}: "
            f"{format_examples([d.date() for d in off])}."
        )
    return grid


def check_gaps(
    present: np.ndarray, series_labels: Sequence[str], grid: pd.DatetimeIndex, hint: str
) -> None:
    """Raise if the (series x time) presence matrix has holes.

    Parameters
    ----------
    present : ndarray of bool, shape (n_series, n_times)
        True where an observation exists.
    series_labels : sequence of str, length n_series
    grid : DatetimeIndex, length n_times
    hint : str
        How the user can resolve the gaps.
    """
    missing = ~present
    if not missing.any():
        return
    rows, cols = np.nonzero(missing)
    n_series = len(np.unique(rows))
    examples = [f"{series_labels[r]} @ {grid[c].date()}" for r, c in zip(rows[:5], cols[:5])]
    raise DataError(
        f"{int(missing.sum())} (series, date) cell(s) are missing in {n_series} series, e.g. "
        f"{format_examples(examples)}. {hint}"
    )
