"""``evaluate``: per-level holdout accuracy of forecasts you already have, in one call.

The counterpart of hierarchicalforecast's ``evaluate`` and fable's ``accuracy()``: give the
tidy forecasts (``reconcile(...).forecasts`` or ``forecast(...).forecasts``), the actuals of the
forecast period, and the hierarchy; get ``level, model, method, metric, value``. Scores follow
:func:`htsforecast.cross_validate` exactly (a metric per node over the horizon, the mean over a
level's nodes, and an ``"all"`` row over every node): both use the same scoring code.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from htsforecast import metrics as _metrics
from htsforecast._cv import _by_level, _order_levels, _resolve, _Window, _window_scores
from htsforecast.errors import DataError
from htsforecast.reconciliation._arrays import MethodResult

__all__ = ["evaluate"]


def evaluate(
    forecasts: Any,
    actuals: pd.DataFrame,
    hier: Any,
    metrics: Sequence[str] = ("mae", "rmse", "mase"),
    *,
    train: pd.DataFrame | None = None,
    season_length: int | None = None,
    freq: str | None = None,
) -> pd.DataFrame:
    """Accuracy of every model x method per hierarchy level on a holdout period.

    Parameters
    ----------
    forecasts : DataFrame, Reconciled or BaseForecasts
        Tidy forecasts ``unique_id, ds, model, [method,] yhat[, yhat_lo_L, yhat_hi_L]``; a
        frame without ``method`` is scored as method ``"base"``.
    actuals : DataFrame
        Long frame ``unique_id, ds, y`` for every node. It may hold the whole series: rows
        on the forecast dates are the actuals, earlier rows the training history (used for
        the MASE/RMSSE scale when ``train`` is not given).
    hier : Hierarchy
        The fitted hierarchy (levels of the nodes).
    metrics : list of str
        Names from :data:`htsforecast.metrics.METRICS` (``mae``, ``rmse``, ``mase``, ``rmsse``,
        ``smape``, ``bias``, ``mse``), plus ``"coverage"`` (one ``coverage_L`` row per interval
        level in ``forecasts``) and ``"crps"`` (from the bounds of every level, exact for Gaussian
        intervals; :func:`~htsforecast.metrics.crps_quantiles`).
    train : DataFrame, optional
        Training history ``unique_id, ds, y`` for the scaled metrics (default: the rows of
        ``actuals`` before the first forecast date).
    season_length : int, optional
        Seasonal period of the MASE/RMSSE scale (default: from ``freq``, else 1).
    freq : str, optional
        pandas offset alias, only used to derive ``season_length``.

    Returns
    -------
    DataFrame
        ``level, model, method, metric, value``, levels in ``hier.levels`` order then ``"all"``.

    Examples
    --------
    >>> rec = reconcile(base, hier, methods)                        # doctest: +SKIP
    >>> evaluate(rec.forecasts, Y, hier, metrics=["mase", "rmse"])  # doctest: +SKIP
    """
    fc = _tidy(forecasts)
    actuals = _long(actuals, "actuals")
    ids = list(hier.node_ids)
    dates = np.sort(fc["ds"].unique())
    missing = sorted(set(ids) - set(fc["unique_id"]))
    if missing:
        raise DataError(
            f"evaluate: forecasts have no rows for {len(missing)} node(s) of the hierarchy, "
            f"e.g. {missing[:3]}."
        )
    test = actuals[actuals["ds"].isin(dates)]
    if test.empty:
        raise DataError(
            f"evaluate: actuals have no rows on the forecast dates {str(dates[0])[:10]} .. "
            f"{str(dates[-1])[:10]}; pass the held-out data."
        )
    levels = tuple(sorted(int(c.rsplit("_", 1)[1]) for c in fc.columns if c.startswith("yhat_lo_")))
    spec = _resolve(list(metrics), levels)
    m = _season_length(season_length, freq)
    powers = {mt.scale_power for mt, _ in spec.metrics.values() if mt.scale_power}
    scale = {}
    if powers:
        history = _history(train, actuals, dates[0], m)
        hist = _matrix(history, "y", ids, np.sort(history["ds"].unique()))
        scale = {p: np.atleast_1d(_metrics.seasonal_naive_scale(hist, m, p)) for p in powers}
    results = [
        MethodResult(
            str(model),
            str(method),
            _matrix(part, "yhat", ids, dates),
            {
                lv: (
                    _matrix(part, f"yhat_lo_{lv}", ids, dates),
                    _matrix(part, f"yhat_hi_{lv}", ids, dates),
                )
                for lv in levels
            },
        )  # fmt: skip
        for (model, method), part in fc.groupby(["model", "method"], sort=False)
    ]
    window = _Window(pd.Timestamp(dates[0]), dates, _matrix(test, "y", ids, dates), results, scale)
    scores = _window_scores(window, ids, spec).drop(columns="cutoff")
    _warn_dropped(scores)
    return _order_levels(_by_level(scores, hier.level_of), hier)


def _matrix(df: pd.DataFrame, col: str, ids: list[str], dates: np.ndarray) -> np.ndarray:
    """(node x date) values of ``df[col]`` in ``ids`` order (NaN where a row is missing)."""
    wide = df.pivot_table(index="unique_id", columns="ds", values=col, aggfunc="first")
    return wide.reindex(index=ids, columns=pd.DatetimeIndex(dates)).to_numpy(dtype=float)


def _tidy(forecasts: Any) -> pd.DataFrame:
    fc = getattr(forecasts, "forecasts", forecasts)
    if not isinstance(fc, pd.DataFrame):
        raise DataError(
            "evaluate: forecasts must be a tidy frame, a Reconciled or a BaseForecasts, got "
            f"{type(forecasts).__name__}."
        )
    need = [c for c in ("unique_id", "ds", "model", "yhat") if c not in fc.columns]
    if need:
        raise DataError(
            f"evaluate: forecasts are missing column(s) {need}; pass reconcile(...).forecasts "
            "or forecast(...).forecasts."
        )
    return fc if "method" in fc.columns else fc.assign(method="base")


def _long(df: pd.DataFrame, what: str) -> pd.DataFrame:
    need = [c for c in ("unique_id", "ds", "y") if c not in df.columns]
    if need:
        raise DataError(
            f"evaluate: {what} is missing column(s) {need}; pass the long frame from "
            "hier.aggregate(df) (unique_id, ds, y)."
        )
    return df


def _season_length(season_length: int | None, freq: str | None) -> int:
    if season_length is not None:
        return int(season_length)
    if freq is None:
        return 1
    from htsforecast.models import season_length_for

    return season_length_for(freq)


def _history(train, actuals, first, m) -> pd.DataFrame:
    history = _long(train, "train") if train is not None else actuals[actuals["ds"] < first]
    n_dates = history["ds"].nunique()
    if n_dates <= m:
        raise DataError(
            f"evaluate: scaled metrics (mase, rmsse) need more than season_length={m} "
            f"training periods before the forecasts, got {n_dates}; pass train=... (the "
            "data the models were fitted on) or actuals that include the history."
        )
    return history


def _warn_dropped(scores: pd.DataFrame) -> None:
    bad = scores[~np.isfinite(scores["value"])]
    if len(bad):
        nodes = bad["unique_id"].unique()
        warnings.warn(
            f"evaluate: {len(bad)} node score(s) were NaN or infinite and were left out of the "
            f"means ({len(nodes)} node(s), e.g. {list(nodes[:3])}): no actuals on the forecast "
            "dates, or a zero seasonal-naive scale (a constant or exactly periodic history).",
            RuntimeWarning,
            stacklevel=3,
        )
