"""Regressor settings of the job (``htsforecast run --exog ... --future ... --holidays ...``).

Turns the command-line strings into the ``exog`` mapping of :meth:`Hierarchy.aggregate` and
builds the future regressor frame: from ``--future`` (bottom-level rows for the h periods), or,
when the only regressor is the holiday calendar, from the calendar itself.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from htsforecast.calendar import CountryHolidays
from htsforecast.errors import DataError

__all__ = ["HOLIDAY_COLUMN", "exog_spec", "future_frame", "job_regressors"]

HOLIDAY_COLUMN = "holiday"


def exog_spec(exog: str | None, holidays: str | None) -> dict[str, Any]:
    """``"price:mean,promo:sum"`` and ``"US:state"`` -> ``{"price": "mean", ..., "holiday": ...}``.

    A column without ``:rule`` maps to None, which :meth:`Hierarchy.aggregate` reports as a
    missing rule naming the column.
    """
    spec: dict[str, Any] = {}
    for item in (exog or "").split(","):
        if item.strip():
            name, _, rule = item.partition(":")
            spec[name.strip()] = rule.strip() or None
    if holidays:
        country, _, subdivision = holidays.partition(":")
        if HOLIDAY_COLUMN in spec:
            raise DataError(
                f"--holidays adds a column '{HOLIDAY_COLUMN}', which --exog already names."
            )
        spec[HOLIDAY_COLUMN] = CountryHolidays(
            country.strip(), subdivision_col=subdivision.strip() or None
        )
    return spec


def future_frame(
    spec: dict[str, Any],
    future: pd.DataFrame | None,
    history: pd.DataFrame,
    keys: list[str],
    time_col: str,
    freq: str,
    h: int,
) -> pd.DataFrame:
    """Bottom-level rows for the ``h`` periods after the history.

    ``future`` (the ``--future`` file) when given; without it the calendar is the only regressor
    allowed, and the rows are every bottom key combination x the ``h`` next dates.
    """
    if future is not None:
        return future
    others = [name for name, rule in spec.items() if not isinstance(rule, CountryHolidays)]
    if others:
        raise DataError(
            f"--exog {', '.join(others)} needs --future: a file of bottom-level rows (the key "
            f"columns, '{time_col}' and the regressors) for the h={h} future periods."
        )
    last = pd.Timestamp(history[time_col].max())
    dates = pd.date_range(last, periods=h + 1, freq=freq)[1:]
    combos = history[keys].drop_duplicates()
    return combos.merge(pd.DataFrame({time_col: dates}), how="cross")


def job_regressors(
    cfg: Any, spec: dict[str, Any], hier: Any, df: pd.DataFrame, freq: str, h: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(Y, X_future)`` of a run: the history with its regressors and their future values."""
    from htsforecast._io import is_parquet
    from htsforecast.validation import to_datetime

    keys, time_col = list(hier.columns), cfg.time_col
    Y = hier.aggregate(df, time_col=time_col, target_col=cfg.target_col, freq=freq,
                       fill=cfg.fill, exog=spec)  # fmt: skip
    future = None
    if cfg.future is not None:
        if is_parquet(cfg.future):
            future = pd.read_parquet(cfg.future)
        else:  # keys as text, as the --data file is read
            future = pd.read_csv(cfg.future, dtype={k: str for k in keys}, encoding=cfg.encoding)
        future[time_col] = to_datetime(future, time_col)
    frame = future_frame(spec, future, df, keys, time_col, freq, h)
    X_future = hier.aggregate(frame, time_col=time_col, target_col=None, freq=freq, exog=spec)
    return Y, X_future
