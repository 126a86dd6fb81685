"""Split-conformal prediction intervals from h-step cross-validation errors, for any model."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from htsforecast.errors import DataError
from htsforecast.models._backtest import backtest_errors, cut_windows, fit_output
from htsforecast.models._protocol import Forecaster, ModelOutput, Panel

if TYPE_CHECKING:
    from htsforecast.models._execution import Executor

__all__ = ["Conformal"]


@dataclass(eq=False)
class Conformal:
    """Wrap a model so that its intervals are split-conformal, horizon by horizon.

    Parameters
    ----------
    model : Forecaster
        Any htsforecast model; its point forecasts and fitted values are kept.
    n_windows : int
        Rolling origins (``h`` steps apart) at the end of the data given; each gives one
        absolute error per node and horizon.
    pooled : bool
        ``True`` (default): the error quantile at horizon ``j`` is taken over the node's
        ``n_windows`` errors *and* those of its neighbouring horizons ``j-1, j, j+1`` (more
        errors per quantile with few windows); ``False``: the node's own ``n_windows`` errors.
    cv_fitted : bool
        Replace the in-sample fitted values by the rolling-origin forecasts: over the last
        ``n_windows * h`` observations the "fitted" value is the 1..h-step forecast made at the
        window's origin, NaN before. MinTrace's ``wls_var`` / ``mint_*`` then estimate ``W``
        from h-step cross-validation errors (pooled over steps 1..h) instead of one-step
        in-sample residuals.

    Notes
    -----
    The interval at level ``L`` and horizon ``j`` is ``ŷ_j ± q_j`` with ``q_j`` the
    ``ceil((n + 1) L/100) / n`` empirical quantile of the ``n`` absolute h-step backtest errors
    (Vovk et al. 2005; statsforecast's and mlforecast's ``conformal_error`` method); with too
    few errors for the level it is their maximum. Width therefore grows with the horizon exactly
    as the model's real h-step errors do. Only the data given is used (training data in a
    cross-validation fold). Nodes too short for any window fail (and fall back).
    """

    model: Forecaster
    n_windows: int = 3
    pooled: bool = True
    cv_fitted: bool = False

    def __post_init__(self) -> None:
        if self.n_windows < 1:
            raise DataError(f"Conformal n_windows must be >= 1, got {self.n_windows}.")

    def __repr__(self) -> str:
        return f"Conformal({self.model!r}, n_windows={self.n_windows})"

    @property
    def min_obs(self) -> int:
        """The wrapped model's minimum (windows add ``h`` observations each)."""
        return int(getattr(self.model, "min_obs", 1) or 1)

    def fit_predict(
        self, panel: Panel, h: int, level: tuple[int, ...], executor: Executor
    ) -> ModelOutput:
        """Fit the model, backtest it on ``n_windows`` origins, set conformal intervals."""
        ok, out = fit_output(self.model, panel, h, (), executor)
        failures = {int(i): "model failed" for i in np.flatnonzero(~ok)}
        if not level and not self.cv_fitted:
            return replace(out, failures=failures)
        windows = cut_windows(panel, h, self.n_windows, h, min_train=self.min_obs)
        signed = backtest_errors(panel, {"m": self.model}, windows, h, executor)["m"]
        if self.cv_fitted:
            out = replace(out, fitted=_cv_fitted(panel, windows, signed))
        if not level:
            return replace(out, failures=failures)
        err = np.abs(signed)
        if self.pooled and h > 1:
            err = pool_neighbours(err)
        lo, hi = {}, {}
        for lv in level:
            q = conformal_quantile(err, lv)
            lo[lv], hi[lv] = out.mean - q, out.mean + q
        none = np.flatnonzero(~np.isfinite(lo[level[0]]).all(axis=1))
        failures.update({int(i): "too short for conformal windows" for i in none})
        return ModelOutput(out.mean, out.fitted, lo, hi, failures=failures)


def pool_neighbours(err: np.ndarray) -> np.ndarray:
    """(n, k, h) scores -> (n, 3k, h): step ``j`` also gets the scores of steps ``j - 1, j + 1``
    (NaN beyond the ends)."""
    pad = np.pad(err, ((0, 0), (0, 0), (1, 1)), constant_values=np.nan)
    return np.concatenate([pad[:, :, :-2], pad[:, :, 1:-1], pad[:, :, 2:]], axis=1)


def conformal_quantile(abs_err: np.ndarray, level: int) -> np.ndarray:
    """Conformal quantile over axis 1 of ``abs_err`` (n, k, h), ignoring NaN: the
    ``ceil((k + 1) level / 100)``-th smallest of the ``k`` finite errors (their max if fewer)."""
    srt = np.sort(abs_err, axis=1)  # NaN last
    k = np.isfinite(abs_err).sum(axis=1)  # (n, h)
    rank = np.minimum(np.ceil((k + 1) * level / 100.0), k).astype(int) - 1
    take = np.take_along_axis(srt, np.maximum(rank, 0)[:, None, :], axis=1)[:, 0, :]
    return np.where(k > 0, take, np.nan)


def _cv_fitted(panel: Panel, windows: list, signed: np.ndarray) -> np.ndarray:
    """Fitted values = the windows' forecasts (actual - error) at their test rows, NaN elsewhere."""
    fitted = np.full(len(panel.y), np.nan)
    h = signed.shape[2]
    for k, win in enumerate(windows):
        rows = (panel.indptr[:-1][win.rows] + win.train.lengths)[:, None] + np.arange(h)
        fitted[rows] = panel.y[rows] - signed[win.rows, k]
    return fitted
