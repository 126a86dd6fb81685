"""Temporal and cross-temporal hierarchies: monthly, quarterly and annual forecasts that agree.

>>> from htsforecast.temporal import TemporalHierarchy, forecast_temporal, reconcile_temporal
>>> th = TemporalHierarchy("MS")                 # k = 12, 6, 4, 3, 2, 1 (thief's default)
>>> base = forecast_temporal(Y, th, {"ets": StatsForecastModel(AutoETS(season_length=12))},
...                          h=24)                # doctest: +SKIP
>>> rec = reconcile_temporal(base, ["struc", "wlsv", "shr"])                   # doctest: +SKIP
>>> ct = reconcile_cross_temporal(base, hier, ["ols", "struc", "wlsv", "bdshr", "tcs"])  # doctest: +SKIP

Every model is fitted at every temporal level ``k`` with frequency ``k × freq`` and season length
``m / k`` (no seasonality where that is 1); ``h`` is counted in the original frequency and
rounded up to whole top-level periods. Outputs are tidy, with a ``temporal_level`` column (``k``)
and ``ds`` = the first date of each block.

References
----------
Athanasopoulos, Hyndman, Kourentzes & Petropoulos (2017), Forecasting with temporal hierarchies,
EJOR 262(1). Kourentzes & Athanasopoulos (2019), Cross-temporal coherent forecasts for Australian
tourism, Annals of Tourism Research 75. Di Fonzo & Girolimetto (2023), Cross-temporal forecast
reconciliation, IJF 39(1).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from htsforecast._forecast import forecast
from htsforecast._temporal_methods import (
    CROSS_TEMPORAL_METHODS,
    TEMPORAL_METHODS,
    Kron,
    cross_temporal_reconcile,
    temporal_reconcile,
)
from htsforecast._temporal_structure import TemporalHierarchy, to_blocks
from htsforecast.errors import DataError, ReconciliationError
from htsforecast.hierarchy import Hierarchy
from htsforecast.models._baseline import Naive, SeasonalNaive
from htsforecast.validation import format_examples

__all__ = [
    "TemporalHierarchy",
    "TemporalForecasts",
    "TemporalReconciled",
    "forecast_temporal",
    "reconcile_temporal",
    "reconcile_cross_temporal",
    "accuracy_table",
    "tag_methods",
    "season_model",
    "TEMPORAL_METHODS",
    "CROSS_TEMPORAL_METHODS",
]

_FC_KEYS = ["unique_id", "temporal_level", "ds", "model"]


@dataclass(frozen=True, eq=False)
class TemporalForecasts:
    """Base forecasts of every series at every temporal level.

    Attributes
    ----------
    forecasts : DataFrame
        ``unique_id, temporal_level, ds, model, yhat`` (+ ``yhat_lo_L``, ``yhat_hi_L``).
    insample : DataFrame or None
        ``unique_id, temporal_level, ds, model, y, fitted, resid``.
    hierarchy : TemporalHierarchy
    h : int
        Horizon in original periods (a whole number of top-level periods).
    fallbacks : DataFrame
        ``unique_id, temporal_level, model, reason, fallback_model``.
    """

    forecasts: pd.DataFrame
    insample: pd.DataFrame | None
    hierarchy: TemporalHierarchy
    h: int
    fallbacks: pd.DataFrame


@dataclass(frozen=True, eq=False)
class TemporalReconciled:
    """Reconciled forecasts: ``forecasts`` is ``unique_id, temporal_level, ds, model, method,
    yhat`` (base forecasts included as method ``"base"``); ``diagnostics`` has one row per
    (model, method) with the largest temporal and cross-sectional coherence violation and the
    count of negative values; ``info`` holds per (model, method) details (shrinkage λ ...)."""

    forecasts: pd.DataFrame
    diagnostics: pd.DataFrame
    info: dict


# ----------------------------------------------------------------------------- base forecasts
def season_model(model: Any, season: int) -> Any:
    """``model`` with its season length set to ``season`` (no seasonality when 1).

    A callable that is not a model is called as ``model(season)``; a ``StatsForecastModel`` is
    copied with the wrapped model's ``season_length`` replaced (and a seasonal ETS spec such as
    ``"ZZA"`` made ``"ZZN"`` when ``season`` is 1); the built-in ``SeasonalNaive`` becomes
    ``SeasonalNaive(season)`` or ``Naive()``. Other models are used unchanged.
    """
    if callable(model) and not hasattr(model, "fit_predict"):
        return model(season)
    if isinstance(model, SeasonalNaive):
        return replace(model, season_length=season) if season > 1 else Naive()
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "season_length"):
        new = copy.deepcopy(model)
        new.model.season_length = season
        spec = getattr(new.model, "model", None)
        if season == 1 and isinstance(spec, str) and len(spec) == 3 and spec[2] != "N":
            new.model.model = spec[:2] + "N"
        return new
    return model


def forecast_temporal(
    Y: pd.DataFrame,
    th: TemporalHierarchy,
    models: Mapping[str, Any],
    h: int,
    level: Sequence[int] | None = None,
    n_jobs: int | None = 1,
    fallback: Any = "auto",
    progress: bool | None = None,
) -> TemporalForecasts:
    """Fit every model at every temporal level of every series and forecast.

    Parameters
    ----------
    Y : DataFrame
        Long ``unique_id, ds, y`` at ``th.freq`` (e.g. ``Hierarchy.aggregate`` output).
    th : TemporalHierarchy
    models : dict name -> model or callable ``season -> model``
        Each model is adapted per level by :func:`season_model` (season ``m / k``).
    h : int
        Horizon in original periods, rounded up to whole top-level periods (``h = 13`` monthly
        gives 2 years: 24 months, 8 quarters, 2 years).
    level, n_jobs, fallback, progress
        As :func:`htsforecast.forecast`, at every level.
    """
    if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
        raise DataError(f"h must be a positive integer (periods of {th.freq!r}), got {h!r}.")
    periods = -(-int(h) // th.m)
    Yt = th.aggregate(Y)
    fcs, ins, fbs = [], [], []
    for k in th.factors:
        Yk = Yt.loc[Yt["temporal_level"] == k, ["unique_id", "ds", "y"]]
        mk = {name: season_model(mod, th.season_of(k)) for name, mod in models.items()}
        base = forecast(
            Yk,
            mk,
            periods * th.m // k,
            freq=th.level_freq(k),
            level=level,
            n_jobs=n_jobs,
            fallback=fallback,
            progress=progress,
        )
        fcs.append(base.forecasts.assign(temporal_level=k))
        ins.append(base.insample.assign(temporal_level=k))
        fbs.append(base.fallbacks.assign(temporal_level=k))
    order = lambda f: f[_FC_KEYS + [c for c in f.columns if c not in _FC_KEYS]]  # noqa: E731
    return TemporalForecasts(
        forecasts=order(pd.concat(fcs, ignore_index=True)),
        insample=order(pd.concat(ins, ignore_index=True)),
        hierarchy=th,
        h=periods * th.m,
        fallbacks=pd.concat(fbs, ignore_index=True),
    )


# ----------------------------------------------------------------------------- reconciliation
def _methods(methods: Sequence[str] | str, registry: Mapping[str, str], what: str) -> list[str]:
    names = [methods] if isinstance(methods, str) else list(methods)
    unknown = [m for m in names if m not in registry]
    if unknown or not names:
        raise ReconciliationError(
            f"unknown {what} method(s) {unknown or names}: use {', '.join(registry)}."
        )
    return names


def _arrays(base: TemporalForecasts, ids: list[str], model: str):
    """(forecast rows of ``model``, F (n, n_t, P), R (n, n_t, N) or None, flat row index)."""
    th = base.hierarchy
    fc = base.forecasts[base.forecasts["model"] == model]
    (F,), flat = to_blocks(fc, ["yhat"], th, ids, f"forecasts of model {model!r}")
    if np.isnan(F).any():
        bad = sorted({ids[i] for i in np.unique(np.nonzero(np.isnan(F))[0])})
        raise DataError(
            f"forecasts of model {model!r} are missing or NaN for series "
            f"{format_examples(bad)} at some temporal level or date."
        )
    R = None
    if base.insample is not None and len(base.insample):
        ins = base.insample[base.insample["model"] == model]
        if len(ins):
            (R,), _ = to_blocks(ins, ["resid"], th, ids, f"in-sample data of model {model!r}")
    return fc, F, R, flat


def _frame(fc: pd.DataFrame, flat: np.ndarray, X: np.ndarray, method: str) -> pd.DataFrame:
    out = fc[_FC_KEYS].copy()
    out.insert(4, "method", method)
    out["yhat"] = X.ravel()[flat]
    return out


def _base_frame(fc: pd.DataFrame) -> pd.DataFrame:
    out = fc[_FC_KEYS + [c for c in fc.columns if c.startswith("yhat")]].copy()
    out.insert(4, "method", "base")
    return out


def _violations(X: np.ndarray, S_te, S_cs=None) -> dict:
    mt = S_te.shape[1]
    te = np.einsum("jt,itp->ijp", S_te.toarray(), X[:, -mt:, :]) - X
    row = {"max_temporal_violation": float(np.abs(te).max()) if X.size else 0.0}
    if S_cs is not None:
        m = S_cs.shape[1]
        cs = np.asarray(S_cs @ X[-m:].reshape(m, -1)).reshape(X.shape) - X
        row["max_cross_sectional_violation"] = float(np.abs(cs).max()) if X.size else 0.0
    row["negatives"] = int((X < 0).sum())
    return row


def _run(base, ids, methods, solve, S_cs=None) -> TemporalReconciled:
    th = base.hierarchy
    frames, diags, info = [], [], {}
    with threadpool_limits(limits=1, user_api="blas"):
        for model in pd.unique(base.forecasts["model"]):
            fc, F, R, flat = _arrays(base, ids, model)
            frames.append(_base_frame(fc))
            for name in methods:
                X, extra = solve(name, F, R)
                frames.append(_frame(fc, flat, X, name))
                diags.append({"model": model, "method": name, **_violations(X, th.S, S_cs)})
                info[(model, name)] = extra
    return TemporalReconciled(pd.concat(frames, ignore_index=True), pd.DataFrame(diags), info)


def reconcile_temporal(
    base: TemporalForecasts,
    methods: Sequence[str] | str = ("struc", "wlsv", "shr"),
    *,
    nonnegative: bool = False,
) -> TemporalReconciled:
    """Reconcile every series across its temporal levels (thief), one series at a time.

    Parameters
    ----------
    base : TemporalForecasts
        From :func:`forecast_temporal` (or built from frames with the same columns).
    methods : list of str
        Any of ``bu``, ``ols``, ``struc``, ``wlsv`` (in-sample MSE per temporal level, thief's
        ``"mse"``), ``wlsh`` (MSE per temporal node), ``shr`` and ``sam`` (shrunk / sample
        covariance of the in-sample residuals stacked as one vector per top-level period,
        Athanasopoulos et al. 2017; ``sam`` falls back to ``shr`` with a warning when singular).
    nonnegative : bool
        Exact non-negative least squares on the original-frequency values (every level is then
        ≥ 0).
    """
    names = _methods(methods, TEMPORAL_METHODS, "temporal")
    th = base.hierarchy
    ids = list(pd.unique(base.forecasts["unique_id"].astype(str)))

    def solve(name: str, F: np.ndarray, R: np.ndarray | None):
        return temporal_reconcile(name, F, R, th.S, th.node_level, nonnegative), {}

    return _run(base, ids, names, solve)


def reconcile_cross_temporal(
    base: TemporalForecasts,
    hier: Hierarchy,
    methods: Sequence[str] | str = ("ols", "struc", "wlsv", "bdshr", "tcs"),
    *,
    nonnegative: bool = False,
    tcs: tuple[str, str] = ("wlsv", "mint_shrink"),
) -> TemporalReconciled:
    """Reconcile across the hierarchy and the temporal levels at once (S = S_cs ⊗ S_te).

    Parameters
    ----------
    base : TemporalForecasts
        Forecasts of every node of ``hier`` at every temporal level, all ending together.
    hier : Hierarchy
        The cross-sectional hierarchy (nested or grouped) of the series.
    methods : list of str
        ``bu``, ``ols``, ``struc``, ``wlsv`` (MSE per series and temporal level), ``wlsh``
        (per series and temporal node), ``bdshr`` (one shrunk cross-sectional covariance per
        temporal level on the diagonal blocks; Di Fonzo & Girolimetto 2023) and ``tcs``
        (Kourentzes & Athanasopoulos 2019).
    nonnegative : bool
        Exact non-negative least squares on the bottom series at the original frequency (not
        available for ``tcs``).
    tcs : (temporal method, cross-sectional MinTrace method)
        The two steps of ``tcs``: a temporal method of :data:`TEMPORAL_METHODS` for every
        series, then the average over temporal levels of the cross-sectional ``MinTrace``
        projections (``"ols"``, ``"wls_struct"``, ``"wls_var"``, ``"mint_shrink"``) estimated
        from each level's residuals.
    """
    names = _methods(methods, CROSS_TEMPORAL_METHODS, "cross-temporal")
    th = base.hierarchy
    ids = list(hier.node_ids)
    _check_common_dates(base.forecasts, len(ids))
    K = Kron(hier.S, th.S)

    def solve(name: str, F: np.ndarray, R: np.ndarray | None):
        return cross_temporal_reconcile(name, K, F, R, th.node_level, nonnegative, tcs)

    return _run(base, ids, names, solve, S_cs=hier.S)


def _check_common_dates(fc: pd.DataFrame, n_series: int) -> None:
    """Cross-temporal reconciliation mixes series period by period: their dates must agree."""
    counts = fc.groupby(["model", "temporal_level", "ds"]).unique_id.nunique()
    bad = counts[counts != n_series]
    if len(bad):
        model, k, ds = bad.index[0]
        raise DataError(
            f"cross-temporal reconciliation needs every series forecast for the same dates, but "
            f"at temporal level {k} only {bad.iloc[0]} of {n_series} series have {ds} (model "
            f"{model!r}); make every series end on the same date."
        )


def tag_methods(*recs: tuple[str, TemporalReconciled]) -> TemporalReconciled:
    """Stack results with prefixed method names (``("te_", te), ("ct_", ct)`` gives ``te_shr``,
    ``ct_bdshr`` ...); the base forecasts are kept once, as ``"base"``."""
    frames = []
    for k, (prefix, rec) in enumerate(recs):
        fc = rec.forecasts
        fc = fc.assign(method=fc["method"].where(fc["method"] == "base", prefix + fc["method"]))
        frames.append(fc if k == 0 else fc[fc["method"] != "base"])
    diags = [r.diagnostics.assign(method=p + r.diagnostics["method"]) for p, r in recs]
    info = {(mod, p + meth): v for p, r in recs for (mod, meth), v in r.info.items()}
    return TemporalReconciled(pd.concat(frames, ignore_index=True), pd.concat(diags), info)


def accuracy_table(
    rec: TemporalReconciled,
    actual: pd.DataFrame,
    base: TemporalForecasts,
    hier: Hierarchy | None = None,
) -> pd.DataFrame:
    """MAE, RMSE and MASE per cross-sectional level, temporal level, model and method.

    ``actual`` is ``unique_id, temporal_level, ds, y`` (``th.aggregate`` of the test data).
    Scores are computed per series over the horizon, then averaged over the series of each
    cross-sectional level (``"all"``: every series). MASE is scaled by the in-sample seasonal
    naive error of the same series and temporal level (season ``m / k``, naive when 1), from
    ``base.insample``.

    Returns
    -------
    DataFrame
        ``level, temporal_level, model, method, metric, value``.
    """
    keys = ["unique_id", "temporal_level", "ds"]
    df = rec.forecasts.merge(actual[keys + ["y"]], on=keys, how="inner")
    if df.empty:
        raise DataError("no forecast matches an actual value (unique_id, temporal_level, ds).")
    df["ae"], df["se"] = (df["y"] - df["yhat"]).abs(), (df["y"] - df["yhat"]) ** 2
    by = ["unique_id", "temporal_level", "model", "method"]
    per = df.groupby(by, sort=False).agg(mae=("ae", "mean"), mse=("se", "mean")).reset_index()
    per["rmse"] = np.sqrt(per.pop("mse"))
    scale = _mase_scale(base)
    per = per.merge(scale, on=["unique_id", "temporal_level", "model"], how="left")
    per["mase"] = per["mae"] / per.pop("scale")
    level_of = hier.level_of if hier is not None else {}
    per["level"] = per["unique_id"].map(level_of).fillna("series")
    long = per.melt(by + ["level"], ["mae", "rmse", "mase"], "metric", "value")
    keys = ["temporal_level", "model", "method", "metric"]
    out = [long.groupby(["level", *keys], sort=False).value.mean().reset_index()]
    out.append(long.groupby(keys, sort=False).value.mean().reset_index().assign(level="all"))
    return pd.concat(out, ignore_index=True)[["level", *keys, "value"]]


def _mase_scale(base: TemporalForecasts) -> pd.DataFrame:
    """Mean |y_t - y_{t-s}| of the training data per series, temporal level and model."""
    if base.insample is None:
        raise DataError("MASE needs the in-sample data (base.insample).")
    th = base.hierarchy
    ins = base.insample.sort_values(["model", "unique_id", "temporal_level", "ds"])
    parts = []
    for k, part in ins.groupby("temporal_level"):
        grp = part.groupby(["model", "unique_id"], sort=False)["y"]
        diff = (part["y"] - grp.shift(th.season_of(int(k)))).abs()
        sc = diff.groupby([part["model"], part["unique_id"]], sort=False).mean()
        parts.append(sc.rename("scale").reset_index().assign(temporal_level=k))
    return pd.concat(parts, ignore_index=True)
