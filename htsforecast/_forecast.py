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
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from htsforecast._exog import panel_with_exog, warn_ignored
from htsforecast._panel import ValidPanel
from htsforecast._progress import progress_enabled
from htsforecast.errors import DataError
from htsforecast.models._baseline import Naive, SeasonalNaive, season_length_for
from htsforecast.models._execution import Executor, LocalExecutor, resolve_n_jobs
from htsforecast.models._fallback import Fit, fit_chain
from htsforecast.models._protocol import Forecaster, Panel
from htsforecast.validation import check_freq, check_levels, validate_panel

__all__ = ["BaseForecasts", "FallbackWarning", "forecast", "forecast_panel", "make_executor"]

_FALLBACK_COLUMNS = ["unique_id", "model", "reason", "fallback_model"]


class FallbackWarning(UserWarning):
    """Some nodes were refitted with the fallback model (see ``BaseForecasts.fallbacks``)."""


@dataclass(frozen=True, eq=False)
class BaseForecasts:
    """Base forecasts of every node by every model.

    The result holds arrays (``mean``, ``lo``, ``hi``, ``fitted``, ``samples``) on the validated
    panel; the tidy frames are built from them on first access.

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
    panel : ValidPanel
        The validated history the models were fitted on.
    mean, lo, hi : dict model -> ndarray (n_ids, h) (``lo``/``hi``: dict level -> array)
    fitted : dict model -> ndarray (n_ids, T)
        In-sample fitted values on ``panel``'s grid (NaN outside a series' span).
    """

    panel: ValidPanel
    h: int
    freq: str
    level: list[int]
    models: list[str]
    mean: dict[str, np.ndarray]
    lo: dict[str, dict[int, np.ndarray]]
    hi: dict[str, dict[int, np.ndarray]]
    fitted: dict[str, np.ndarray]
    fallbacks: pd.DataFrame
    samples: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        """Node ids, rows of the arrays."""
        return [str(i) for i in self.panel.ids]

    @cached_property
    def future_dates(self) -> np.ndarray:
        """The forecast dates, shape (n_ids, h)."""
        return self.panel.to_model_panel().future_ds(self.h)

    @cached_property
    def forecasts(self) -> pd.DataFrame:
        """Tidy forecasts (see the class docstring)."""
        names, n, h = self.models, self.panel.n_series, self.h
        fc: dict[str, Any] = {
            "unique_id": np.tile(np.repeat(self.panel.ids, h), len(names)),
            "ds": np.tile(self.future_dates.ravel(), len(names)),
            "model": np.repeat(np.array(names, dtype=object), n * h),
            "yhat": np.concatenate([self.mean[m].ravel() for m in names]),
        }
        for lv in self.level:
            fc[f"yhat_lo_{lv}"] = np.concatenate([self.lo[m][lv].ravel() for m in names])
            fc[f"yhat_hi_{lv}"] = np.concatenate([self.hi[m][lv].ravel() for m in names])
        return pd.DataFrame(fc)

    @cached_property
    def insample(self) -> pd.DataFrame:
        """Tidy in-sample values (see the class docstring)."""
        panel, names = self.panel, self.models
        mask = panel.mask()
        n_obs = int(mask.sum())
        ds = np.broadcast_to(panel.dates.to_numpy(), mask.shape)[mask]
        y = np.tile(panel.values[mask], len(names))
        fitted = np.concatenate([self.fitted[m][mask] for m in names])
        return pd.DataFrame(
            {
                "unique_id": np.tile(np.repeat(panel.ids, panel.end - panel.start), len(names)),
                "ds": np.tile(ds, len(names)),
                "model": np.repeat(np.array(names, dtype=object), n_obs),
                "y": y,
                "fitted": fitted,
                "resid": y - fitted,
            }
        )

    def wide(self) -> pd.DataFrame:
        """Nixtla-style frame: ``unique_id, ds, <model>, <model>-lo-80, <model>-hi-80 ...``."""
        n = len(self.ids) * self.h
        out = self.forecasts.iloc[:n][["unique_id", "ds"]].reset_index(drop=True)
        for name in self.models:
            out[name] = self.mean[name].ravel()
            for lv in sorted(self.level, reverse=True):
                out[f"{name}-lo-{lv}"] = self.lo[name][lv].ravel()
            for lv in sorted(self.level):
                out[f"{name}-hi-{lv}"] = self.hi[name][lv].ravel()
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
    Y: pd.DataFrame | ValidPanel,
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
    Y : DataFrame or ValidPanel
        Long frame ``unique_id, ds, y`` (e.g. from ``Hierarchy.aggregate``): every series on the
        ``freq`` grid without gaps, no NaN, no duplicated (unique_id, ds). Or the panel
        :func:`htsforecast.validation.validate_panel` made of it (not validated again).
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
    h, levels = _check_h(h), check_levels(level)
    models = _check_models(models)
    chain = _fallback_chain(fallback, freq)
    panel = validate_panel(Y, freq)
    exog = None
    if X_future is not None:
        if not isinstance(Y, pd.DataFrame):
            raise DataError("X_future needs Y as a frame holding the regressor columns.")
        exog = (Y, X_future)
    executor = make_executor(n_jobs, progress, engine)
    return forecast_panel(panel, models, h, levels, chain, executor, exog)


def forecast_panel(
    panel: ValidPanel,
    models: Mapping[str, Forecaster],
    h: int,
    levels: tuple[int, ...],
    chain: list[tuple[str, Forecaster]],
    executor: Executor,
    exog: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> BaseForecasts:
    """Fit every model (with the fallback ``chain``) on an already validated panel.

    The array core of :func:`forecast`, also run by cross-validation on each window's slice.
    ``exog``: the frames ``(Y, X_future)`` holding the regressors of the history and horizon.
    """
    model_panel = panel.to_model_panel()
    if exog is not None:
        model_panel = panel_with_exog(model_panel, exog[0], exog[1], h)
        warn_ignored(models, model_panel.exog)
    fits = {
        name: fit_chain(model_panel, [(name, model), *chain], h, levels, executor)
        for name, model in models.items()
    }
    fallbacks = _fallback_frame(model_panel, fits)
    _warn(fallbacks)
    return BaseForecasts(
        panel=panel,
        h=h,
        freq=panel.freq,
        level=list(levels),
        models=list(fits),
        mean={m: f.out.mean for m, f in fits.items()},
        lo={m: dict(f.out.lo) for m, f in fits.items()},
        hi={m: dict(f.out.hi) for m, f in fits.items()},
        fitted={m: panel.dense(f.out.fitted) for m, f in fits.items()},
        fallbacks=fallbacks,
        samples={m: f.out.samples for m, f in fits.items() if f.out.samples is not None},
    )


# ----------------------------------------------------------------------------- arguments


def _check_h(h: Any) -> int:
    if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
        raise DataError(f"h must be a positive integer (steps of freq), got {h!r}.")
    return int(h)


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
    check_freq(freq)
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
