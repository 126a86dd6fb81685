"""Fit base forecasters at every node: forecasts, intervals, fitted values, residuals, fallbacks.

``forecast`` reads as validate -> panel -> fit every model (with fallbacks) -> tidy frames. The
models do the numerical work (:mod:`htsforecast.models`); where per-node work runs is decided in
one place, :func:`make_executor`.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from htsforecast._exog import panel_with_exog, warn_ignored
from htsforecast._progress import progress_enabled
from htsforecast.errors import DataError
from htsforecast.models._baseline import Naive, SeasonalNaive, season_length_for
from htsforecast.models._execution import Executor, LocalExecutor, resolve_n_jobs
from htsforecast.models._fallback import Fit, fit_chain
from htsforecast.models._protocol import Forecaster, Panel
from htsforecast.validation import check_target, format_examples, require_columns, to_datetime

__all__ = ["BaseForecasts", "FallbackWarning", "forecast", "make_executor", "validate_long_frame"]

_FALLBACK_COLUMNS = ["unique_id", "model", "reason", "fallback_model"]


class FallbackWarning(UserWarning):
    """Some nodes were refitted with the fallback model (see ``BaseForecasts.fallbacks``)."""


@dataclass(frozen=True, eq=False)
class BaseForecasts:
    """Base forecasts of every node by every model.

    Attributes
    ----------
    forecasts : DataFrame
        ``unique_id, ds, model, yhat`` + ``yhat_lo_{L}, yhat_hi_{L}`` per level; every
        unique_id x model x h steps, rows ordered by model, then ``ids``, then ``ds``.
    insample : DataFrame
        ``unique_id, ds, model, y, fitted, resid`` (NaN where a model has no fitted value, e.g.
        the first season of a seasonal naive), rows ordered like ``forecasts``.
    fallbacks : DataFrame
        ``unique_id, model, reason, fallback_model``: nodes refitted with a fallback model.
    samples : dict model -> ndarray (n_ids, h, n_samples)
        Predictive sample paths (rows ordered as ``ids``) for models that produce them.
    ids : list of str
        Node ids, in the order of first appearance in ``Y``.
    h : int
    freq : str
    level : list of int
    models : list of str
    """

    forecasts: pd.DataFrame
    insample: pd.DataFrame
    fallbacks: pd.DataFrame
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    h: int = 1
    freq: str = "D"
    level: list[int] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    def wide(self) -> pd.DataFrame:
        """Nixtla-style frame: ``unique_id, ds, <model>, <model>-lo-80, <model>-hi-80 ...``."""
        n = len(self.ids) * self.h
        out = self.forecasts.iloc[:n][["unique_id", "ds"]].reset_index(drop=True)
        for k, name in enumerate(self.models):
            block = self.forecasts.iloc[k * n : (k + 1) * n]
            out[name] = block["yhat"].to_numpy()
            for lv in sorted(self.level, reverse=True):
                out[f"{name}-lo-{lv}"] = block[f"yhat_lo_{lv}"].to_numpy()
            for lv in sorted(self.level):
                out[f"{name}-hi-{lv}"] = block[f"yhat_hi_{lv}"].to_numpy()
        return out


def make_executor(
    n_jobs: int | None = 1, progress: bool | None = None, engine: Any = None
) -> Executor:
    """The executor running per-node work: local processes, or a cluster when ``engine`` is set.

    See :func:`htsforecast.engines.executor_for` for the accepted ``engine`` values.
    """
    if engine is not None:
        from htsforecast.engines import executor_for

        return executor_for(engine, progress)
    return LocalExecutor(n_jobs=resolve_n_jobs(n_jobs), progress=progress_enabled(progress))


def forecast(
    Y: pd.DataFrame,
    models: Mapping[str, Forecaster],
    h: int,
    *,
    freq: str,
    level: Sequence[int] | None = None,
    n_jobs: int | None = 1,
    fallback: Forecaster | Sequence[Forecaster] | str | None = "auto",
    progress: bool | None = None,
    engine: Any = None,
    X_future: pd.DataFrame | None = None,
) -> BaseForecasts:
    """Fit every model at every node of ``Y`` and forecast ``h`` steps.

    Parameters
    ----------
    Y : DataFrame
        Long frame ``unique_id, ds, y`` (e.g. from ``Hierarchy.aggregate``): every series on the
        ``freq`` grid without gaps, no NaN, no duplicated (unique_id, ds).
    models : dict name -> Forecaster
        e.g. ``{"ets": StatsForecastModel(AutoETS(season_length=12)), "snaive":
        SeasonalNaive(12)}``.
    h : int
        Forecast horizon in steps of ``freq``.
    freq : str
        pandas offset alias of the data (``"MS"``, ``"QS"``, ``"D"`` ...); never guessed.
        Keyword-only, as in :func:`cross_validate`: ``forecast(Y, models, h=12, freq="MS")``.
    level : sequence of int, optional
        Prediction-interval levels in percent, e.g. ``[80, 95]``.
    n_jobs : int
        Parallel jobs (``-1``: all cores): statsforecast's own processes, Prophet's workers.
    fallback : Forecaster, sequence of them, "auto" or None
        Models tried in turn on nodes where a model fails (too short for it, an error, a
        non-finite output). ``"auto"``: ``SeasonalNaive(season_length_for(freq))`` then
        ``Naive()``. ``None``: a failure raises :class:`~htsforecast.errors.HTSError`.
    progress : bool, optional
        Progress bar; default on only when stderr is a terminal.
    engine : None, "dask", "spark", distributed.Client, pyspark SparkSession or Executor
        Where the base models are fitted. ``None``: this machine (``n_jobs`` processes).
        Otherwise on that cluster (``n_jobs`` is then ignored): statsforecast models chunk-wise
        through fugue, Prophet chunks of nodes as Dask tasks / Spark ``applyInPandas`` groups;
        same numbers as the local run (see :mod:`htsforecast.engines`).
    X_future : DataFrame, optional
        Regressor values over the horizon: ``unique_id, ds`` and one column per regressor (e.g.
        ``hier.aggregate(future_df, exog=..., target_col=None)``); ``Y`` must hold the same
        columns over the history. Models that accept regressors (``uses_exog``: statsforecast's
        AutoARIMA, ARIMA, MSTL with an ARIMA trend ..., ``ProphetModel``) use them; the others
        ignore them, with one :class:`~htsforecast._exog.ExogIgnoredWarning`.

    Returns
    -------
    BaseForecasts

    Raises
    ------
    DataError
        Malformed ``Y`` (missing columns, NaN, duplicates, dates off ``freq``, gaps) or
        arguments.

    Warns
    -----
    FallbackWarning
        Once, summarising the nodes that fell back (counts and distinct reasons).

    Examples
    --------
    >>> from statsforecast.models import AutoETS
    >>> from htsforecast.models import StatsForecastModel, SeasonalNaive
    >>> base = forecast(Y, {"ets": StatsForecastModel(AutoETS(season_length=12)),
    ...                     "snaive": SeasonalNaive(12)}, h=12, freq="MS", level=[80, 95])
    ... # doctest: +SKIP
    >>> base.forecasts.columns.tolist()  # doctest: +SKIP
    ['unique_id', 'ds', 'model', 'yhat', 'yhat_lo_80', 'yhat_hi_80', 'yhat_lo_95', 'yhat_hi_95']
    """
    h, levels = _check_h(h), _check_level(level)
    models = _check_models(models)
    chain = _fallback_chain(fallback, freq)
    panel = Panel.from_long(validate_long_frame(Y, freq), freq)
    if X_future is not None:
        panel = panel_with_exog(panel, Y, X_future, h)
        warn_ignored(models, panel.exog)
    executor = make_executor(n_jobs, progress, engine)
    fits = {
        name: fit_chain(panel, [(name, model), *chain], h, levels, executor)
        for name, model in models.items()
    }
    fallbacks = _fallback_frame(panel, fits)
    _warn(fallbacks)
    return _build(panel, fits, fallbacks, h, freq, levels)


# ----------------------------------------------------------------------------- arguments


def _check_h(h: Any) -> int:
    if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
        raise DataError(f"h must be a positive integer (steps of freq), got {h!r}.")
    return int(h)


def _check_level(level: Sequence[int] | None) -> tuple[int, ...]:
    if level is None:
        return ()
    values = [level] if np.isscalar(level) else list(level)
    out = set()
    for lv in values:
        if not (
            isinstance(lv, (int, float, np.number)) and float(lv).is_integer() and 0 < lv < 100
        ):
            raise DataError(
                f"level must hold integers strictly between 0 and 100 (percent), got {lv!r} in "
                f"{values}. Example: level=[80, 95]."
            )
        out.add(int(lv))
    return tuple(sorted(out))


def _check_models(models: Any) -> dict[str, Forecaster]:
    if not isinstance(models, Mapping) or not models:
        raise DataError(
            "models must be a non-empty dict name -> model, e.g. "
            '{"ets": StatsForecastModel(AutoETS(season_length=12))}.'
        )
    for name, model in models.items():
        if not isinstance(name, str) or not name:
            raise DataError(f"model names must be non-empty strings, got {name!r}.")
        _check_model(model, f"models[{name!r}]")
    return dict(models)


def _check_model(model: Any, what: str) -> None:
    if isinstance(model, Forecaster):
        return
    module = type(model).__module__.split(".")[0]
    hint = {
        "statsforecast": f"wrap it: StatsForecastModel({type(model).__name__}(...)).",
        "prophet": "use htsforecast.models.ProphetModel(**prophet_kwargs) instead.",
    }.get(module, "it needs a fit_predict(panel, h, level, executor) method (see Forecaster).")
    raise TypeError(f"{what} is a {type(model).__name__}, not an htsforecast model; {hint}")


def _fallback_chain(fallback: Any, freq: str) -> list[tuple[str, Forecaster]]:
    _offset(freq)
    if fallback is None:
        return []
    if isinstance(fallback, str):
        if fallback != "auto":
            raise DataError(
                f'fallback must be a model, a list of models, "auto" or None, got {fallback!r}.'
            )
        m = season_length_for(freq)
        chain: list[Any] = [SeasonalNaive(m), Naive()] if m > 1 else [Naive()]
    else:
        chain = [fallback] if isinstance(fallback, Forecaster) else list(fallback)
    for k, model in enumerate(chain):
        _check_model(model, f"fallback[{k}]")
    return [(repr(model), model) for model in chain]


def _offset(freq: str) -> pd.DateOffset:
    try:
        return pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError):
        raise DataError(
            f"freq={freq!r} is not a pandas frequency alias; use e.g. 'MS' (month start), "
            "'QS', 'W-SUN', 'D' or 'h'."
        ) from None


# ----------------------------------------------------------------------------- validation


def validate_long_frame(Y: pd.DataFrame, freq: str) -> pd.DataFrame:
    """Check a long ``unique_id, ds, y`` frame and return it sorted by (unique_id, ds).

    Series keep their order of first appearance. Raises :class:`DataError` naming the offending
    series and rows for: missing columns, missing ids, non-numeric / NaN / inf ``y``, unparsable
    dates, duplicated (unique_id, ds), dates off the ``freq`` grid, and gaps inside a series.
    """
    require_columns(Y, ["unique_id", "ds", "y"], what="Y")
    if len(Y) == 0:
        raise DataError("Y has no rows; forecast needs at least one observation per series.")
    if Y["unique_id"].isna().any():
        rows = Y.index[Y["unique_id"].isna().to_numpy()]
        raise DataError(f"column 'unique_id' is missing at row(s) {format_examples(rows)}.")
    ids = Y["unique_id"].astype(str).to_numpy(dtype=object)
    y = check_target(Y, "y", series=ids)
    ds = to_datetime(Y, "ds").to_numpy(dtype="datetime64[ns]")
    codes, _ = pd.factorize(ids)
    order = np.lexsort((ds, codes))
    frame = pd.DataFrame({"unique_id": ids[order], "ds": ds[order], "y": y[order]})
    index = Y.index.to_numpy()[order]
    same = codes[order][1:] == codes[order][:-1]
    _check_duplicates(frame, index, same)
    _check_grid(frame, index, same, freq)
    return frame


def _check_duplicates(frame: pd.DataFrame, index: np.ndarray, same: np.ndarray) -> None:
    ds = frame["ds"].to_numpy()
    dup = np.flatnonzero(same & (ds[1:] == ds[:-1])) + 1
    if dup.size:
        examples = [f"{frame['unique_id'].iat[i]} @ {pd.Timestamp(ds[i])}" for i in dup]
        raise DataError(
            f"{dup.size} duplicated (unique_id, ds) row(s): {format_examples(examples)} "
            f"(rows {format_examples(index[dup])}). Sum or deduplicate them first."
        )


def _check_grid(frame: pd.DataFrame, index: np.ndarray, same: np.ndarray, freq: str) -> None:
    """Dates must lie on the ``freq`` grid, and consecutive dates of a series be one step apart."""
    offset = _offset(freq)
    ds = frame["ds"].to_numpy()
    uniq = np.unique(ds)
    grid = pd.date_range(uniq[0], uniq[-1], freq=offset)
    step = pd.Index(grid).get_indexer(uniq)
    off = step < 0
    if off.any():
        rows = np.flatnonzero(np.isin(ds, uniq[off]))
        guess = pd.infer_freq(pd.DatetimeIndex(uniq[:50])) if len(uniq) >= 3 else None
        hint = f" The dates look like freq={guess!r}." if guess else ""
        raise DataError(
            f"{off.sum()} date(s) are not on freq={freq!r}, e.g. "
            f"{format_examples([pd.Timestamp(d) for d in uniq[off]])}, in series "
            f"{format_examples(pd.unique(frame['unique_id'].to_numpy()[rows]))} "
            f"(rows {format_examples(index[rows])}).{hint}"
        )
    pos = step[np.searchsorted(uniq, ds)]
    gap = np.flatnonzero(same & (np.diff(pos) > 1))
    if gap.size:
        ids = frame["unique_id"].to_numpy()
        examples = [f"{ids[i]} after {pd.Timestamp(ds[i])}" for i in gap]
        raise DataError(
            f"{gap.size} gap(s) inside series (missing dates on freq={freq!r}): "
            f"{format_examples(examples)}. Fill them explicitly (e.g. with 0 for counts) or use "
            "Hierarchy.aggregate(..., fill='zero')."
        )


# ----------------------------------------------------------------------------- results


def _fallback_frame(panel: Panel, fits: dict[str, Fit]) -> pd.DataFrame:
    rows = [
        (str(panel.ids[i]), name, fit.reasons.get(i, ""), label)
        for name, fit in fits.items()
        for i, label in sorted(fit.used.items())
    ]
    return pd.DataFrame(rows, columns=_FALLBACK_COLUMNS)


def _warn(fallbacks: pd.DataFrame) -> None:
    if fallbacks.empty:
        return
    per_model = ", ".join(
        f"{m!r}: {c}" for m, c in fallbacks["model"].value_counts(sort=False).items()
    )
    reasons = Counter(fallbacks["reason"])
    shown = "; ".join(f"{r} [{c}]" for r, c in reasons.most_common(5))
    more = f"; and {len(reasons) - 5} other reason(s)" if len(reasons) > 5 else ""
    warnings.warn(
        f"{len(fallbacks)} node forecast(s) fell back ({per_model}). Reasons: {shown}{more}. "
        "See BaseForecasts.fallbacks.",
        FallbackWarning,
        stacklevel=3,
    )


def _build(
    panel: Panel,
    fits: dict[str, Fit],
    fallbacks: pd.DataFrame,
    h: int,
    freq: str,
    level: tuple[int, ...],
) -> BaseForecasts:
    names = list(fits)
    n, n_models = panel.n_series, len(names)
    future = panel.future_ds(h).ravel()
    fc: dict[str, Any] = {
        "unique_id": np.tile(np.repeat(panel.ids, h), n_models),
        "ds": np.tile(future, n_models),
        "model": np.repeat(np.array(names, dtype=object), n * h),
        "yhat": np.concatenate([fits[m].out.mean.ravel() for m in names]),
    }
    for lv in level:
        fc[f"yhat_lo_{lv}"] = np.concatenate([fits[m].out.lo[lv].ravel() for m in names])
        fc[f"yhat_hi_{lv}"] = np.concatenate([fits[m].out.hi[lv].ravel() for m in names])
    n_obs = len(panel.y)
    fitted = np.concatenate([fits[m].out.fitted for m in names])
    y = np.tile(panel.y, n_models)
    insample = pd.DataFrame(
        {
            "unique_id": np.tile(np.repeat(panel.ids, panel.lengths), n_models),
            "ds": np.tile(panel.ds, n_models),
            "model": np.repeat(np.array(names, dtype=object), n_obs),
            "y": y,
            "fitted": fitted,
            "resid": y - fitted,
        }
    )
    samples = {m: f.out.samples for m, f in fits.items() if f.out.samples is not None}
    return BaseForecasts(
        forecasts=pd.DataFrame(fc),
        insample=insample,
        fallbacks=fallbacks,
        samples=samples,
        ids=[str(i) for i in panel.ids],
        h=h,
        freq=freq,
        level=list(level),
        models=names,
    )
