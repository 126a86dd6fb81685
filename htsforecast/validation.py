"""Input checks done once, at the boundary.

Every check raises :class:`~htsforecast.errors.DataError` with a message that names the offending
column and shows a few of the offending rows, plus a hint.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from htsforecast._panel import ValidPanel
from htsforecast.errors import DataError

__all__ = [
    "require_columns",
    "check_target",
    "to_datetime",
    "check_freq",
    "guess_freq",
    "date_grid",
    "check_duplicates",
    "check_levels",
    "check_gaps",
    "format_examples",
    "format_date",
    "validate_panel",
]

_MAX_EXAMPLES = 5


def format_examples(items: Iterable[object], max_items: int = _MAX_EXAMPLES) -> str:
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
    """Return ``df[time_col]`` as timezone-naive datetime64, or raise a clear :class:`DataError`.

    Time-zone policy: **local wall time**. Dates that carry a zone or a UTC offset keep the
    clock time as written and drop the zone, e.g. ``2020-03-30T00:00+02:00`` becomes
    ``2020-03-30 00:00``. So daily, weekly and monthly data whose offset changes at a DST switch
    (``+01:00`` / ``+02:00``) stays on its ``D`` / ``W`` / ``MS`` grid. Hourly data across a DST
    switch then has a repeated hour (autumn, reported as duplicated rows) or a missing one
    (spring, a gap): convert such data to UTC yourself first
    (``pd.to_datetime(col, utc=True).dt.tz_localize(None)``).
    """
    col = df[time_col]
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_datetime64_any_dtype(col):
        raise DataError(
            f"time column '{time_col}' holds numbers ({col.dtype}), not dates; convert it first, "
            f"e.g. pd.to_datetime(df['{time_col}'].astype(str), format='%Y') for years."
        )
    if isinstance(col.dtype, pd.PeriodDtype):
        return col.dt.to_timestamp()
    out = col if pd.api.types.is_datetime64_any_dtype(col) else _parse_dates(col, time_col)
    bad = df.index[out.isna().to_numpy()]
    if len(bad):
        raise DataError(
            f"time column '{time_col}' has {len(bad)} missing date(s), at row(s) "
            f"{format_examples(bad)}."
        )
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_localize(None)  # wall time (see the policy above)
    return out


def _parse_dates(col: pd.Series, time_col: str) -> pd.Series:
    """Parse a non-datetime column; mixed UTC offsets (DST) are read as local wall time."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # pandas: mixed time zones
            out = pd.to_datetime(col)
        if out.dtype == object:  # mixed offsets: Timestamps with different zones
            raise ValueError("mixed time zones")
        return out
    except (ValueError, TypeError) as exc:
        if "time zone" not in str(exc) and "timezone" not in str(exc).lower():
            raise DataError(f"time column '{time_col}' cannot be parsed as dates: {exc}") from None
    try:
        return pd.to_datetime(col.map(_wall_time))
    except (ValueError, TypeError) as exc:
        raise DataError(f"time column '{time_col}' cannot be parsed as dates: {exc}") from None


def _wall_time(x: object) -> object:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return x
    ts = pd.Timestamp(x)
    return ts.tz_localize(None) if ts.tzinfo is not None else ts


_FREQ_NAMES = {
    "MS": "month start",
    "ME": "month end",
    "QS": "quarter start",
    "QE": "quarter end",
    "YS": "year start",
    "YE": "year end",
    "W": "weekly",
    "D": "daily",
    "B": "business days",
    "h": "hourly",
    "min": "minutes",
}


def check_freq(freq: object) -> pd.DateOffset:
    """Parse a pandas offset alias, or raise a :class:`DataError` with examples."""
    try:
        return pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError):
        raise DataError(
            f"freq={freq!r} is not a valid pandas frequency alias; use e.g. 'MS' (month start), "
            "'QS', 'W-SUN', 'D' or 'h'."
        ) from None


def guess_freq(dates: np.ndarray | pd.DatetimeIndex) -> str | None:
    """The frequency the (sorted, distinct) dates look like, with its meaning, or None."""
    uniq = pd.DatetimeIndex(dates)
    if len(uniq) < 3:
        return None
    guess = pd.infer_freq(uniq[:50])
    if guess is None:
        return None
    if guess.startswith("QS-") and all(d.month in (1, 4, 7, 10) for d in uniq[:4]):
        guess = "QS"  # pandas names January quarters QS-OCT
    elif guess in ("YS-JAN", "YE-DEC"):
        guess = guess[:2]
    base = guess.split("-")[0]
    name = _FREQ_NAMES.get(base)
    if base == "W" and "-" in guess:
        name = f"weekly on {pd.Timestamp(uniq[0]).day_name()}s"
    return f"{guess!r} ({name})" if name else repr(guess)


def date_grid(
    dates: np.ndarray | pd.Series | pd.DatetimeIndex,
    freq: str,
    time_col: str = "ds",
    locate: Callable[[np.ndarray], str] | None = None,
) -> pd.DatetimeIndex:
    """The ``freq`` grid from the first to the last date, after checking every date lies on it.

    The one grid check of the package. Before allocating the grid its size is estimated from the
    data's span: a grid more than 100 times larger than the number of distinct dates (e.g.
    ``freq='ms'``, milliseconds, meant ``'MS'``) fails at once with a hint.

    Parameters
    ----------
    dates : array-like of datetime64
        Every date of the data (repeats allowed).
    freq : str
        pandas offset alias.
    time_col : str
        Name of the date column, for messages.
    locate : callable, optional
        ``locate(off_dates)`` returns extra text naming where the off-grid dates are (series,
        rows).

    Raises
    ------
    DataError
        ``freq`` is not an alias, the grid would be huge, or some dates are not on it.
    """
    offset = check_freq(freq)
    uniq = np.unique(np.asarray(dates, dtype="datetime64[ns]"))
    if len(uniq) == 0:
        raise DataError(f"time column '{time_col}' has no dates.")
    _check_grid_size(uniq, offset, freq, time_col)
    grid = pd.date_range(uniq[0], uniq[-1], freq=offset)
    off = uniq[~np.isin(uniq, grid.to_numpy())]
    if len(off):
        guess = guess_freq(uniq)
        hint = f" The dates look like freq={guess}: did you mean that?" if guess else ""
        where = locate(off) if locate is not None else ""
        raise DataError(
            f"{len(off)} date(s) not on frequency {freq!r}: "
            f"{format_examples([format_date(d) for d in off])}{where} "
            f"(time column '{time_col}').{hint}"
        )
    return grid


def _check_grid_size(uniq: np.ndarray, offset: pd.DateOffset, freq: str, time_col: str) -> None:
    span = pd.Timestamp(uniq[-1]) - pd.Timestamp(uniq[0])
    try:
        step = pd.Timedelta(offset.nanos, "ns")  # fixed frequencies (h, min, ms, D ...)
    except ValueError:  # calendar frequencies: the first steps' mean length
        start = pd.Timestamp(uniq[0])
        step = (start + 3 * offset - start) / 3
    if step <= pd.Timedelta(0):
        return
    estimate = span / step + 1
    limit = max(100 * len(uniq), 10_000)
    if estimate > limit:
        guess = guess_freq(uniq)
        hint = f" Did you mean freq={guess}?" if guess else ""
        raise DataError(
            f"freq={freq!r} would put about {estimate:,.0f} periods between the first and last "
            f"date of time column '{time_col}', but the data has {len(uniq):,} distinct "
            f"date(s).{hint}"
        )


def format_date(d: object) -> str:
    """``2020-01-01`` for a midnight timestamp, the full timestamp otherwise."""
    ts = pd.Timestamp(d)
    return str(ts.date()) if ts == ts.normalize() else str(ts)


def check_duplicates(
    cell: np.ndarray,
    index: pd.Index | np.ndarray,
    cols: Sequence[str],
    describe: Callable[[int], str],
) -> None:
    """Raise if two rows fall in the same cell (series x date).

    The one duplicate check of the package.

    Parameters
    ----------
    cell : ndarray of int, one code per row
        Rows with the same code are duplicates (e.g. ``series_code * n_dates + date_code``).
    index : row labels, for the message
    cols : the columns that identify a cell, for the message (``["unique_id", "ds"]``)
    describe : callable
        ``describe(position)`` names the cell of the row at that position, e.g. ``"A @ 2000-04-01"``.
    """
    dup = pd.Series(cell).duplicated(keep=False).to_numpy()
    if not dup.any():
        return
    pos = np.flatnonzero(dup)
    first = pos[np.unique(cell[pos], return_index=True)[1]]
    first = np.sort(first)
    cells = [describe(int(i)) for i in first]
    raise DataError(
        f"{len(first)} duplicated ({', '.join(cols)}) row(s): {format_examples(cells)}; "
        f"{len(pos)} rows share the same ({', '.join(cols)}) values, e.g. rows "
        f"{format_examples(np.asarray(index)[pos])}. Sum or deduplicate them first."
    )


def check_levels(level: object) -> tuple[int, ...]:
    """Interval levels in percent: sorted, without repeats (``[95, 80, 80]`` -> ``(80, 95)``)."""
    if level is None:
        return ()
    values = [level] if np.isscalar(level) else list(level)  # type: ignore[call-overload]
    out = set()
    for lv in values:
        if not (
            isinstance(lv, (int, float, np.number))
            and not isinstance(lv, bool)
            and float(lv).is_integer()
            and 0 < lv < 100
        ):
            raise DataError(
                f"level must hold integers strictly between 0 and 100 (percent), got {lv!r} in "
                f"{values}. Example: level=[80, 95]."
            )
        out.add(int(lv))
    return tuple(sorted(out))


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


def validate_panel(
    Y: pd.DataFrame | ValidPanel, freq: str, nodes: Sequence[str] | None = None, what: str = "Y"
) -> ValidPanel:
    """Check a long ``unique_id, ds, y`` frame once and return it as a :class:`ValidPanel`.

    A :class:`ValidPanel` passed again is returned as it is (after checking ``freq`` and, with
    ``nodes``, putting its series in that order): the data is validated once per run.

    Series keep their order of first appearance, or the order ``nodes`` (a hierarchy's node
    ids, which must then be exactly the series of ``Y``). Raises :class:`DataError` naming the
    offending series and rows for: missing columns, missing ids, non-numeric / NaN / inf ``y``,
    unparsable dates, duplicated (unique_id, ds), dates off the ``freq`` grid (or a grid far
    larger than the data), and gaps inside a series.
    """
    if isinstance(Y, ValidPanel):  # validated already: never twice
        return _checked_panel(Y, freq, nodes, what)
    require_columns(Y, ["unique_id", "ds", "y"], what=what)
    if len(Y) == 0:
        raise DataError(f"{what} has no rows; at least one observation per series is needed.")
    if Y["unique_id"].isna().any():
        rows = Y.index[Y["unique_id"].isna().to_numpy()]
        raise DataError(f"column 'unique_id' is missing at row(s) {format_examples(rows)}.")
    ids = Y["unique_id"].astype(str).to_numpy(dtype=object)
    y = check_target(Y, "y", series=ids)
    ds = to_datetime(Y, "ds").to_numpy(dtype="datetime64[ns]")
    codes, names = pd.factorize(ids)
    names = np.asarray(names, dtype=object)
    if nodes is not None:
        codes, names = _node_codes(codes, names, nodes, what)
    t_codes, uniq = pd.factorize(ds, sort=True)
    check_duplicates(
        codes.astype(np.int64) * len(uniq) + t_codes,
        Y.index,
        ["unique_id", "ds"],
        lambda i: f"{ids[i]} @ {format_date(ds[i])}",
    )

    def locate(off: np.ndarray) -> str:
        rows = np.flatnonzero(np.isin(ds, off))
        return (
            f", in series {format_examples(pd.unique(ids[rows]))} "
            f"(rows {format_examples(Y.index[rows])})"
        )

    grid = date_grid(uniq, freq, "ds", locate)
    pos = grid.get_indexer(pd.DatetimeIndex(uniq))[t_codes]
    values = np.full((len(names), len(grid)), np.nan)
    values[codes, pos] = y
    start = np.full(len(names), len(grid), dtype=np.int64)
    end = np.zeros(len(names), dtype=np.int64)
    np.minimum.at(start, codes, pos)
    np.maximum.at(end, codes, pos + 1)
    panel = ValidPanel(names, grid, values, start, end, str(freq))
    _check_inner_gaps(panel, np.bincount(codes, minlength=len(names)), freq)
    return panel


def _checked_panel(
    panel: ValidPanel, freq: str, nodes: Sequence[str] | None, what: str
) -> ValidPanel:
    """An already validated panel: same frequency, and in ``nodes`` order when given."""
    if check_freq(freq) != check_freq(panel.freq):
        raise DataError(f"{what} was validated with freq={panel.freq!r}, not {freq!r}.")
    if nodes is None or list(panel.ids) == list(nodes):
        return panel
    codes = np.arange(panel.n_series)
    _node_codes(codes, panel.ids, nodes, what)  # raises on unknown / missing nodes
    return panel.reorder(list(nodes))


def _node_codes(
    codes: np.ndarray, names: np.ndarray, nodes: Sequence[str], what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Re-code series to the hierarchy's node order; every node present, no other series."""
    pos = pd.Index(list(nodes)).get_indexer(names)
    if (pos < 0).any():
        raise DataError(f"{what} has unknown node(s) {format_examples(list(names[pos < 0]))}.")
    present = np.zeros(len(nodes), dtype=bool)
    present[pos] = True
    if not present.all():
        missing = [nodes[int(i)] for i in np.flatnonzero(~present)]
        raise DataError(
            f"{what} has no rows for {len(missing)} node(s) of the hierarchy, e.g. "
            f"{format_examples(missing)}. Hierarchy.aggregate gives them all."
        )
    return pos[codes], np.asarray(list(nodes), dtype=object)


def _check_inner_gaps(panel: ValidPanel, counts: np.ndarray, freq: str) -> None:
    """Consecutive dates of a series must be one ``freq`` step apart."""
    if np.array_equal(counts, panel.end - panel.start):
        return
    present = ~np.isnan(panel.values)
    inside = np.arange(1, len(panel.dates)) < panel.end[:, None]
    rows, cols = np.nonzero(present[:, :-1] & ~present[:, 1:] & inside)
    examples = [f"{panel.ids[r]} after {format_date(panel.dates[c])}" for r, c in zip(rows, cols)]
    raise DataError(
        f"{len(rows)} gap(s) inside series (missing dates on freq={freq!r}): "
        f"{format_examples(examples)}. Fill them explicitly (e.g. with 0 for counts) or use "
        "Hierarchy.aggregate(..., fill='zero')."
    )
