"""Rolling-origin cross-validation of every model x reconciliation method.

validate once -> slice the panel at each cutoff -> fit (array core of ``forecast``) ->
reconcile (array core of ``reconcile``) -> score on arrays -> frames at the end.

The input is checked once (:func:`htsforecast.validation.validate_panel`); each window is a
slice of that panel, never a re-validated or re-pivoted frame.

Windows (expanding, fpp3 section 5.10 "time series cross-validation"): with ``T`` dates on the
common time grid, window ``k = 0 .. n_windows - 1`` trains on every date up to and including the
cutoff ``dates[T - h - 1 - (n_windows - 1 - k) * step_size]`` and is scored on the next ``h``
dates, so the last window's test period is the last ``h`` dates of ``Y``.

Scores follow fpp3 (Table 11.2): a metric is computed per node over the ``h`` steps of a window;
a level's score is the mean over its nodes; the ``"all"`` row is the mean over every node; window
scores are then averaged over windows. Scaled metrics (MASE, RMSSE) are scaled per node and
window by that window's training data. Non-finite per-node scores (a zero seasonal-naive scale
gives ``inf``) are left out of the means, with one warning saying how many.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from htsforecast import metrics as _metrics
from htsforecast._panel import ValidPanel
from htsforecast.errors import DataError
from htsforecast.reconciliation._arrays import MethodResult
from htsforecast.reconciliation._warnings import summarised_warnings

__all__ = ["cross_validate", "CVResult"]

ALL = "all"
_KEYS = ["model", "method"]


@dataclass(frozen=True, eq=False)
class _Window:
    """One window's outputs, as arrays (rows in the hierarchy's node order)."""

    cutoff: pd.Timestamp
    dates: np.ndarray  # (h,) test dates
    actual: np.ndarray  # (n, h)
    results: list[MethodResult]
    scale: dict[int, np.ndarray]  # scale power -> (n,) in-sample seasonal-naive scale


@dataclass(frozen=True, eq=False)
class _Spec:
    """What the run scores: (metric, level) per score name."""

    names: list[str]
    metrics: dict[str, tuple[_metrics.Metric, int | None]]


@dataclass(frozen=True, eq=False)
class CVResult:
    """What :func:`cross_validate` returns (always this type).

    Attributes
    ----------
    table : DataFrame
        ``level, model, method, metric, value`` averaged over windows; levels in
        ``hier.levels`` order, then ``"all"`` (the mean over every node).
    by_window : DataFrame
        Same with a ``cutoff`` column, one score per window.
    level : list of int
        The prediction-interval levels of the run.
    forecasts : DataFrame
        Every window's tidy forecasts joined with the actuals: ``unique_id, ds, model, method,
        yhat`` (+ interval columns), ``y, cutoff, horizon``. Built on first access.
    by_horizon : DataFrame
        ``level, model, method, metric, horizon, value``: per horizon step ``1..h``, the metric
        computed per node over the windows (errors scaled per window for scaled metrics),
        averaged over the level's nodes; point metrics only. Built on first access.
    """

    table: pd.DataFrame
    by_window: pd.DataFrame
    level: list[int] = field(default_factory=list)
    _windows: list[_Window] = field(default_factory=list, repr=False)
    _hier: Any = field(default=None, repr=False)
    _spec: _Spec | None = field(default=None, repr=False)

    @cached_property
    def forecasts(self) -> pd.DataFrame:
        """Every window's tidy forecasts with the actuals (see the class docstring)."""
        return _forecast_frame(self._windows, self._hier.node_ids, self.level)

    @cached_property
    def by_horizon(self) -> pd.DataFrame:
        """Per-horizon scores (see the class docstring)."""
        assert self._spec is not None
        return _horizon_scores(self._windows, self._hier, self._spec)


def cross_validate(
    Y: pd.DataFrame | ValidPanel,
    hier: Any,
    models: Mapping[str, Any],
    methods: Mapping[str, Any] | None,
    h: int,
    n_windows: int,
    step_size: int | None = None,
    *,
    freq: str,
    level: Sequence[int] | None = None,
    metrics: Sequence[str] = ("mae", "rmse", "mase"),
    season_length: int | None = None,
    n_jobs: int = 1,
    progress: bool | None = None,
    forecast_kwargs: Mapping[str, Any] | None = None,
    reconcile_kwargs: Mapping[str, Any] | None = None,
    exog: Sequence[str] | None = None,
) -> CVResult:
    """Rolling-origin (expanding window) evaluation of every model x reconciliation method.

    Parameters
    ----------
    Y : DataFrame or ValidPanel
        All-nodes long frame ``unique_id, ds, y`` (``hier.aggregate(df)``), or its validated
        panel (:func:`htsforecast.validation.validate_panel`; not validated again).
    hier : Hierarchy
        The fitted hierarchy ``Y`` came from (levels, ``S``).
    models : dict
        Name -> model, as for :func:`htsforecast.forecast`.
    methods : dict or None
        Name -> reconciliation method, as for :func:`htsforecast.reconcile`; the unreconciled
        forecasts are always scored as method ``"base"``. None/empty: base only.
    h : int
        Forecast horizon of each window.
    n_windows : int
        Number of forecast origins.
    step_size : int, optional
        Dates between consecutive cutoffs (default ``h``: non-overlapping test periods);
        statsforecast's name.
    freq : str
        pandas offset alias of ``Y`` (e.g. ``"QS"``); keyword-only, as in :func:`forecast`.
    level : list of int, optional
        Prediction interval levels; needed by interval metrics (``"coverage"``, ``"crps"``).
    metrics : list of str
        Names from :data:`htsforecast.metrics.METRICS`: ``"coverage"`` gives one
        ``coverage_{L}`` row per level, ``"crps"`` the CRPS of the distribution the bounds of
        every level describe (:func:`~htsforecast.metrics.crps_quantiles`), ``"crps_sample"``
        the sample CRPS where sample paths exist (models with samples,
        ``intervals="bootstrap"``/``"samples"`` in ``reconcile_kwargs``).
    season_length : int, optional
        Seasonal period ``m`` of the MASE/RMSSE scale (4 quarterly, 12 monthly; 1 = naive).
        Default: derived from ``freq`` (``season_length_for``).
    n_jobs, progress, forecast_kwargs, reconcile_kwargs
        Passed on to ``forecast`` (``n_jobs``, ``fallback``, ``engine``) and ``reconcile``
        (``intervals``, ``n_samples``, ``seed``); ``progress`` shows a bar over windows.
    exog : list of str, optional
        Regressor columns of ``Y`` (from ``hier.aggregate(df, exog=...)``; ``Y`` must then be a
        frame). Each window forecasts with the *actual* regressor values of its test dates as
        ``X_future``: the standard "known future" assumption (exact for calendars and planned
        promotions; for forecast covariates such as weather, scores are optimistic).

    Returns
    -------
    CVResult
        ``.table`` is the tidy ``level, model, method, metric, value`` table; per-window and
        per-horizon scores and the forecasts joined with the actuals ride along.

    Examples
    --------
    >>> from htsforecast import Hierarchy, cross_validate
    >>> from htsforecast.models import Naive
    >>> from htsforecast.reconciliation import BottomUp
    >>> df = pd.DataFrame({"g": ["a"] * 8 + ["b"] * 8, "y": np.arange(16.0),
    ...                    "ds": list(pd.date_range("2020-01-01", periods=8, freq="QS")) * 2})
    >>> hier = Hierarchy.from_formula("g")
    >>> Y = hier.aggregate(df, freq="QS")
    >>> cv = cross_validate(Y, hier, {"naive": Naive()}, {"bu": BottomUp()}, h=2, n_windows=2,
    ...                     freq="QS", metrics=["mae"], season_length=1)
    >>> cv.table.query("level == 'all'")["value"].tolist()  # MAE: total 3, a and b 1.5 each
    [2.0, 2.0]
    """
    from htsforecast._forecast import _check_h, _check_models, _fallback_chain, make_executor
    from htsforecast._progress import progress_bar, progress_enabled
    from htsforecast.models import season_length_for
    from htsforecast.validation import check_levels, validate_panel

    h, models = _check_h(h), _check_models(models)
    if step_size is not None and int(step_size) < 1:
        raise DataError(f"step_size must be a positive number of periods, got {step_size!r}.")
    m = season_length_for(freq) if season_length is None else season_length
    levels = check_levels(level)
    spec = _resolve(metrics, levels)
    panel = validate_panel(Y, freq, nodes=hier.node_ids, what="cross_validate: Y")
    cuts = _cutoffs(len(panel.dates), h, n_windows, step_size or h, min_train=m + 1)
    fkw = {"n_jobs": n_jobs, **(forecast_kwargs or {})}
    chain = _fallback_chain(fkw.pop("fallback", "auto"), freq)
    executor = make_executor(fkw.pop("n_jobs"), fkw.pop("progress", None), fkw.pop("engine", None))
    if fkw:
        raise DataError(f"forecast_kwargs: unknown argument(s) {sorted(fkw)}.")
    regressors = _regressors(Y, exog)
    powers = {mt.scale_power for mt, _ in spec.metrics.values() if mt.scale_power}
    windows = []
    bar = progress_bar(len(cuts), "cross-validation windows", progress_enabled(progress))
    with summarised_warnings(hier.node_ids):  # one line per kind of warning, not per window
        for t in cuts:
            windows.append(
                _run_window(
                    panel,
                    t,
                    hier,
                    models,
                    methods,
                    h,
                    levels,
                    chain,
                    executor,
                    dict(reconcile_kwargs or {}),
                    m,
                    powers,
                    spec,
                    regressors,
                )  # fmt: skip
            )
            bar.update(1)
    bar.close()
    return _assemble(windows, hier, spec, levels)


def _regressors(Y: Any, exog: Sequence[str] | None) -> tuple[pd.DataFrame, pd.Series] | None:
    """The regressor columns of ``Y`` and its dates, for each window's ``X_future``."""
    if not exog:
        return None
    if not isinstance(Y, pd.DataFrame):
        raise DataError("cross_validate(exog=...) needs Y as a frame holding those columns.")
    from htsforecast.validation import require_columns, to_datetime

    require_columns(Y, ["unique_id", "ds", *exog], what="cross_validate: Y")
    return Y[["unique_id", "ds", *exog]], to_datetime(Y, "ds")


def _resolve(names: Sequence[str], levels: tuple[int, ...]) -> _Spec:
    """Score names (``coverage`` expands per level) and their metrics; check what they need."""
    out: dict[str, tuple[_metrics.Metric, int | None]] = {}
    for name in names:
        if name not in _metrics.METRICS:
            raise DataError(f"unknown metric {name!r}; choose from {sorted(_metrics.METRICS)}.")
        metric = _metrics.METRICS[name]
        if "intervals" in metric.needs and not levels:
            raise DataError(f"metric {name!r} needs prediction intervals: pass level=[80].")
        if metric.per_level:
            out.update({f"{name}_{lv}": (metric, lv) for lv in levels})
        else:
            out[name] = (metric, None)
    return _Spec(list(out), out)


def _cutoffs(T: int, h: int, n_windows: int, step: int, min_train: int) -> list[int]:
    """Training lengths ``t`` of each window (train on dates ``[0, t)``, test on ``[t, t+h)``)."""
    if h < 1 or n_windows < 1 or step < 1:
        raise DataError(
            f"cross_validate needs h >= 1, n_windows >= 1 and step_size >= 1; got h={h}, "
            f"n_windows={n_windows}, step_size={step}."
        )
    first = T - h - 1 - (n_windows - 1) * step
    if first + 1 < min_train:
        raise DataError(
            f"Y has {T} dates, too few for {n_windows} windows of h={h} every "
            f"{step} step(s): the first window would train on {max(first + 1, 0)} dates "
            f"(need >= {min_train}). Use fewer windows, a smaller step_size or h."
        )
    return [first + k * step + 1 for k in range(n_windows)]


def _run_window(
    panel: ValidPanel,
    t: int,
    hier: Any,
    models: dict[str, Any],
    methods: Mapping[str, Any] | None,
    h: int,
    levels: tuple[int, ...],
    chain: list,
    executor: Any,
    reconcile_kwargs: dict[str, Any],
    m: int,
    powers: set[int],
    spec: _Spec,
    regressors: tuple[pd.DataFrame, pd.Series] | None = None,
) -> _Window:
    """Fit on the panel's first ``t`` dates, reconcile, keep the arrays needed for scoring."""
    from threadpoolctl import threadpool_limits

    from htsforecast._forecast import forecast_panel
    from htsforecast.reconciliation._api import _normalize_methods
    from htsforecast.reconciliation._arrays import arrays_of_base, reconcile_arrays

    train = panel.cut(t)
    exog = None
    if regressors is not None:  # known future: the window's actual regressor values
        frame, ds = regressors
        exog = (frame, frame[(ds > panel.dates[t - 1]).to_numpy()])
    base = forecast_panel(train, models, h, levels, chain, executor, exog)
    inputs = arrays_of_base(base, hier.node_ids)
    if inputs is None:
        raise DataError(
            f"cross_validate: some series have no observation up to the cutoff "
            f"{panel.dates[t - 1].date()}; every node needs history in every window."
        )
    rec_methods = _normalize_methods(methods) if methods else {}
    keep_samples = any("samples" in mt.needs for mt, _ in spec.metrics.values())
    with threadpool_limits(limits=1, user_api="blas"):
        results = reconcile_arrays(
            inputs, hier, rec_methods, levels, keep_samples=keep_samples, **reconcile_kwargs
        )
    history = panel.values[:, :t][:, train.observed_columns()]
    scale = {p: np.atleast_1d(_metrics.seasonal_naive_scale(history, m, p)) for p in powers}
    return _Window(
        cutoff=panel.dates[t - 1],
        dates=panel.dates[t : t + h].to_numpy(),
        actual=panel.values[:, t : t + h],
        results=results,
        scale=scale,
    )


def _score(
    metric: _metrics.Metric,
    lv: int | None,
    y: np.ndarray,
    res: MethodResult,
    scale: dict[int, np.ndarray],
) -> np.ndarray:
    """One metric of one (model, method) on one window: per-node scores (NaN if not scorable)."""
    if "samples" in metric.needs and res.samples is None:
        return np.full(len(y), np.nan)  # no sample paths for this pipeline
    if "intervals" in metric.needs and not res.bounds:
        return np.full(len(y), np.nan)
    sc = scale[metric.scale_power] if metric.scale_power else None
    return metric(y, res.ytilde, intervals=res.bounds, level=lv, samples=res.samples, scale=sc)


def _window_scores(w: _Window, ids: list[str], spec: _Spec) -> pd.DataFrame:
    """Per-node scores of one window: ``unique_id, model, method, metric, value, cutoff``."""
    blocks, labels = [], []
    for res in w.results:
        for name in spec.names:
            metric, lv = spec.metrics[name]
            blocks.append(np.atleast_1d(_score(metric, lv, w.actual, res, w.scale)))
            labels.append((res.model, res.method, name))
    n = len(ids)
    lab = np.array(labels, dtype=object).reshape(-1, 3)
    return pd.DataFrame(
        {
            "unique_id": np.tile(np.asarray(ids, dtype=object), len(blocks)),
            "model": np.repeat(lab[:, 0], n),
            "method": np.repeat(lab[:, 1], n),
            "metric": np.repeat(lab[:, 2], n),
            "value": np.concatenate(blocks),
            "cutoff": w.cutoff,
        }
    )


def _by_level(
    per_node: pd.DataFrame, level_of: Mapping[str, str], extra: Sequence[str] = ()
) -> pd.DataFrame:
    """Mean of finite per-node scores per level plus the 'all' row."""
    keys = [*extra, *_KEYS, "metric"]
    finite = per_node[np.isfinite(per_node["value"])]
    lv = finite.assign(level=finite["unique_id"].map(level_of))
    per_level = lv.groupby(["level", *keys], sort=False)["value"].mean().reset_index()
    overall = finite.groupby(keys, sort=False)["value"].mean().reset_index().assign(level=ALL)
    return pd.concat([per_level, overall], ignore_index=True)[["level", *keys, "value"]]


def _order_levels(table: pd.DataFrame, hier: Any) -> pd.DataFrame:
    order = {name: i for i, name in enumerate([*hier.levels, ALL])}
    return table.sort_values("level", key=lambda s: s.map(order), kind="stable").reset_index(
        drop=True
    )


def _assemble(windows: list[_Window], hier: Any, spec: _Spec, levels: tuple[int, ...]) -> CVResult:
    ids = hier.node_ids
    nodes = pd.concat([_window_scores(w, ids, spec) for w in windows], ignore_index=True)
    _warn_non_finite(nodes["value"].to_numpy())
    by_window = _by_level(nodes, hier.level_of, extra=["cutoff"])
    keys = ["level", *_KEYS, "metric"]
    table = by_window.groupby(keys, sort=False)["value"].mean().reset_index()
    return CVResult(
        table=_order_levels(table, hier),
        by_window=_order_levels(by_window, hier),
        level=list(levels),
        _windows=windows,
        _hier=hier,
        _spec=spec,
    )


def _warn_non_finite(values: np.ndarray) -> None:
    n_bad = int((~np.isfinite(values) & ~np.isnan(values)).sum())
    if n_bad:
        warnings.warn(
            f"{n_bad} node x window scores were infinite (zero seasonal-naive scale: a "
            "constant or exactly periodic training series) and were left out of the means.",
            RuntimeWarning,
            stacklevel=4,
        )
    n_nan = int(np.isnan(values).sum())
    if n_nan:
        warnings.warn(
            f"{n_nan} node x window scores were NaN (e.g. no finite actuals, a zero scale with "
            "an exact forecast, or no sample paths for a sample metric) and were left out of "
            "the means.",
            RuntimeWarning,
            stacklevel=4,
        )


def _forecast_frame(windows: list[_Window], ids: list[str], levels: list[int]) -> pd.DataFrame:
    """Every window's tidy forecasts joined with the actuals, each column allocated once.

    Rows: window, then method result, then node, then horizon step. A bound column a result
    does not have is NaN there. (At M5 size the frame is ~1 GB; building it per result and
    concatenating held three copies at once.)
    """
    blocks = [(w, res) for w in windows for res in w.results]
    if not blocks:
        return pd.DataFrame(columns=["unique_id", "ds", "model", "method", "yhat", "y",
                                     "cutoff", "horizon"])  # fmt: skip
    size = [w.actual.size for w, _ in blocks]
    bounds = [f"yhat_{side}_{lv}" for lv in levels if any(lv in r.bounds for _, r in blocks)
              for side in ("lo", "hi")]  # fmt: skip
    total, ids_ = sum(size), np.asarray(ids, dtype=object)
    cols: dict[str, Any] = {"unique_id": np.empty(total, dtype=object),
                            "ds": np.empty(total, dtype=windows[0].dates.dtype),
                            "model": np.empty(total, dtype=object),
                            "method": np.empty(total, dtype=object),
                            **{c: np.full(total, np.nan) for c in ["yhat", *bounds, "y"]}}  # fmt: skip
    horizon = np.empty(total, dtype=np.int64)
    at = 0
    for (w, res), k in zip(blocks, size, strict=True):
        n, h = w.actual.shape
        rows = slice(at, at + k)
        at += k
        cols["unique_id"][rows] = np.repeat(ids_, h)
        cols["ds"][rows] = np.tile(w.dates, n)
        horizon[rows] = np.tile(np.arange(1, h + 1), n)
        cols["model"][rows], cols["method"][rows] = [res.model], [res.method]  # one str object
        cols["yhat"][rows], cols["y"][rows] = res.ytilde.ravel(), w.actual.ravel()
        for lv, (lo, hi) in res.bounds.items():
            if f"yhat_lo_{lv}" in cols:
                cols[f"yhat_lo_{lv}"][rows], cols[f"yhat_hi_{lv}"][rows] = lo.ravel(), hi.ravel()
    cols["cutoff"] = pd.Index([w.cutoff for w, _ in blocks]).repeat(size)
    cols["horizon"] = pd.array(horizon, dtype="Int64")
    return pd.DataFrame(cols, copy=False)


def _horizon_scores(windows: list[_Window], hier: Any, spec: _Spec) -> pd.DataFrame:
    """Per horizon step: each point metric over the windows per node.

    A scaled metric is computed on the errors scaled per window by ``scale ** (1 / power)``
    (with a unit scale), so windows with different training histories are comparable.
    """
    ids = np.asarray(hier.node_ids, dtype=object)
    alpha = np.argsort(ids, kind="stable")
    point = [n for n in spec.names if not ({"intervals", "samples"} & spec.metrics[n][0].needs)]
    keys = sorted({(r.model, r.method) for r in windows[0].results})
    y = np.stack([w.actual for w in windows], axis=-1)  # (n, h, W)
    rows = []
    for hz in range(y.shape[1]):
        for model, method in keys:
            yhat = np.stack([_result(w, model, method).ytilde[:, hz] for w in windows], axis=-1)
            for name in point:
                metric, _ = spec.metrics[name]
                a, b, sc = y[:, hz], yhat, None
                if metric.scale_power:
                    s = np.stack([w.scale[metric.scale_power] for w in windows], axis=-1)
                    s = s ** (1 / metric.scale_power)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        a, b = a / s, b / s
                    sc = np.ones(len(ids))
                vals = metric(a[alpha], b[alpha], scale=sc)
                rows.append((hz + 1, model, method, name, vals))
    per_node = pd.DataFrame(
        {
            "unique_id": np.tile(ids[alpha], len(rows)),
            "model": np.repeat([r[1] for r in rows], len(ids)),
            "method": np.repeat([r[2] for r in rows], len(ids)),
            "metric": np.repeat([r[3] for r in rows], len(ids)),
            "horizon": np.repeat([r[0] for r in rows], len(ids)),
            "value": np.concatenate([r[4] for r in rows]),
        }
    )
    out = _by_level(per_node, hier.level_of, extra=["horizon"])
    return _order_levels(out, hier)[["level", "model", "method", "metric", "horizon", "value"]]


def _result(w: _Window, model: str, method: str) -> MethodResult:
    return next(r for r in w.results if r.model == model and r.method == method)
