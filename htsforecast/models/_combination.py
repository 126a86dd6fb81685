"""Forecast combinations: several models fitted at every node and averaged.

Combining forecasts is one of the most reliable ways to improve accuracy (Bates & Granger 1969;
FPP3 §13.4; in the M4 competition most of the top methods were combinations, Makridakis et al.
2020). :class:`Combination` is an ordinary model: its in-sample fitted values (hence residuals)
are combined with the same weights, so MinTrace's ``wls_var`` / ``mint_*`` use them, and it can
be a candidate of :class:`~htsforecast.models.Selected`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from htsforecast.errors import DataError
from htsforecast.models._backtest import (
    METRICS,
    FitFn,
    backtest_errors,
    cut_windows,
    fit_output,
    score_errors,
)
from htsforecast.models._execution import Executor
from htsforecast.models._protocol import Forecaster, ModelOutput, Panel

__all__ = ["Combination"]

Weights = Literal["equal", "inverse_cv_error"]


@dataclass(eq=False)
class Combination:
    """Weighted average of several models, fitted at every node.

    Parameters
    ----------
    members : dict name -> model
        e.g. ``{"ets": StatsForecastModel(AutoETS(season_length=4)), "arima":
        StatsForecastModel(AutoARIMA(season_length=4)), "theta":
        StatsForecastModel(DynamicOptimizedTheta(season_length=4))}``.
    weights : {"equal", "inverse_cv_error"}
        ``"equal"``: the plain mean (FPP3 §13.4). ``"inverse_cv_error"``: per node, weights
        proportional to ``1 / score`` of each member, the score being ``metric`` of its h-step
        errors in a rolling-origin backtest on the data the combination is given (training data
        only; ``n_windows`` origins ``step`` apart); ``metric="mse"`` is Bates & Granger's
        inverse-variance rule. A node where some member has no backtest score (too short) gets
        equal weights.
    metric : {"mse", "mae", "mase", "rmse", "rmsse"}
    n_windows, step : int
        Backtest origins for ``"inverse_cv_error"`` (``step`` default: ``h``).
    season_length : int
        Season of the MASE / RMSSE scale.

    Notes
    -----
    * Point forecasts and fitted values are the weighted means of the members'. Where a member
      failed on a node (too short, an error, non-finite output) the others' weights are
      renormalised; the node fails only if every member does. Fitted values are averaged over
      the members that have one at that time (e.g. an ARIMA has none for its first ``d``
      observations).
    * Intervals follow a documented rule, **quantile averaging** (Lichtendahl, Grushka-Cockayne &
      Winkler 2013): each bound is the weighted mean of the members' bounds at that level. For
      Gaussian members this is the interval of the combined forecast when the members' errors
      are perfectly correlated, so it is never narrower than the members' own, and it keeps the
      members' growth with the horizon. Members without intervals at a node are left out.
    * After each fit, ``weights_`` holds the weights used: ``unique_id`` + one column per member.
    """

    members: Mapping[str, Forecaster]
    weights: Weights = "equal"
    metric: str = "mse"
    n_windows: int = 2
    step: int | None = None
    season_length: int = 1
    weights_: pd.DataFrame | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.members, Mapping) or len(self.members) < 1:
            raise DataError(
                "Combination needs a dict name -> model with at least one member, e.g. "
                '{"ets": StatsForecastModel(AutoETS()), "theta": StatsForecastModel(Theta())}.'
            )
        for name, member in self.members.items():
            if not isinstance(member, Forecaster):
                raise DataError(
                    f"Combination member {name!r} is a {type(member).__name__}, not an "
                    "htsforecast model (wrap statsforecast models in StatsForecastModel)."
                )
        if self.weights not in ("equal", "inverse_cv_error"):
            raise DataError(
                f"Combination weights must be 'equal' or 'inverse_cv_error', got {self.weights!r}."
            )
        if self.metric not in METRICS:
            raise DataError(f"unknown Combination metric {self.metric!r}; choose from {METRICS}.")

    def __repr__(self) -> str:
        return f"Combination({list(self.members)}, weights={self.weights!r})"

    @property
    def min_obs(self) -> int:
        """A node is given to the combination when at least one member can fit it."""
        return min(int(getattr(m, "min_obs", 1) or 1) for m in self.members.values())

    @property
    def uses_exog(self) -> bool:
        """True when a member uses exogenous regressors (it receives them)."""
        return any(getattr(m, "uses_exog", False) for m in self.members.values())

    def fit_predict(
        self, panel: Panel, h: int, level: tuple[int, ...], executor: Executor
    ) -> ModelOutput:
        """Fit every member on ``panel`` and combine (see the class notes)."""
        return self.fit_with(panel, h, level, executor, fit_output)

    def fit_with(
        self, panel: Panel, h: int, level: tuple[int, ...], executor: Executor, fit: FitFn
    ) -> ModelOutput:
        """:meth:`fit_predict` with the members run through ``fit`` (e.g. a memoising one)."""
        results = [fit(m, panel, h, level, executor) for m in self.members.values()]
        w = self.member_weights(panel, h, executor, fit)
        self.weights_ = pd.DataFrame(w, columns=list(self.members)).assign(
            unique_id=panel.ids.astype(str)
        )[["unique_id", *self.members]]
        return combine(panel, [ok for ok, _ in results], [out for _, out in results], w, level)

    def member_weights(self, panel: Panel, h: int, executor: Executor, fit: FitFn) -> np.ndarray:
        """Weights before renormalisation over failed members, shape (n_series, n_members)."""
        k = len(self.members)
        equal = np.full((panel.n_series, k), 1.0 / k)
        if self.weights == "equal" or panel.n_series == 0:
            return equal
        windows = cut_windows(panel, h, self.n_windows, self.step)
        errors = backtest_errors(panel, self.members, windows, h, executor, fit)
        scores = np.column_stack(
            [score_errors(e, self.metric, panel, windows, self.season_length)
             for e in errors.values()]
        )  # fmt: skip
        return inverse_weights(scores, equal)


def inverse_weights(scores: np.ndarray, default: np.ndarray) -> np.ndarray:
    """Rows ``1/score`` normalised; a zero score takes all the weight (shared among ties); rows
    with any missing score get ``default``."""
    out = default.copy()
    ok = np.isfinite(scores).all(axis=1)
    s = scores[ok]
    zero = s <= 0
    with np.errstate(divide="ignore"):
        inv = np.where(zero.any(axis=1, keepdims=True), zero.astype(float), 1.0 / s)
    out[ok] = inv / inv.sum(axis=1, keepdims=True)
    return out


def combine(
    panel: Panel,
    oks: list[np.ndarray],
    outs: list[ModelOutput],
    weights: np.ndarray,
    level: tuple[int, ...],
) -> ModelOutput:
    """Weighted mean of member outputs; weights renormalised over members that forecast a node.

    Parameters
    ----------
    oks : list of bool arrays (n_series,)
    outs : list of ModelOutput
    weights : ndarray, shape (n_series, n_members)
    """
    ok = np.column_stack(oks) if oks else np.zeros((panel.n_series, 0), dtype=bool)
    w = np.where(ok, weights, 0.0)
    total = w.sum(axis=1)
    failed = np.flatnonzero(total <= 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = w / total[:, None]
    mean = _wmean([o.mean for o in outs], w)
    group = np.repeat(np.arange(panel.n_series), panel.lengths)
    fitted = _wmean([o.fitted for o in outs], w[group])
    lo = {lv: _wmean([o.lo[lv] for o in outs], w) for lv in level}
    hi = {lv: _wmean([o.hi[lv] for o in outs], w) for lv in level}
    reason = "every member of the combination failed"
    return ModelOutput(mean, fitted, lo, hi, failures={int(i): reason for i in failed})


def _wmean(arrays: list[np.ndarray], w: np.ndarray) -> np.ndarray:
    """Weighted mean of ``arrays`` (same shape, first axis like ``w``'s rows), renormalising the
    weights over the finite entries; NaN where none is finite."""
    num = np.zeros(arrays[0].shape)
    den = np.zeros(arrays[0].shape)
    for k, arr in enumerate(arrays):
        wk = w[:, k].reshape((-1,) + (1,) * (arr.ndim - 1))
        good = np.isfinite(arr) & (wk > 0)
        num += np.where(good, arr * wk, 0.0)
        den += np.where(good, wk, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)
