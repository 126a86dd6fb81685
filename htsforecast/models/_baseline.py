"""Built-in benchmark forecasters: naive, seasonal naive and mean, vectorised over all nodes.

They fit thousands of series in milliseconds (no Python loop over series), which keeps the
reconciliation and evaluation tests fast, and they are the default fallbacks.

Prediction intervals are Gaussian, ``yhat ± z_{(1 + L/100)/2} · σ̂_h``, with the multi-step
standard deviations of Hyndman & Athanasopoulos, *Forecasting: Principles and Practice* (3rd ed.),
§5.5, table 5.2::

    Mean            σ̂_h = σ̂ · sqrt(1 + 1/T)
    Naive           σ̂_h = σ̂ · sqrt(h)
    SeasonalNaive   σ̂_h = σ̂ · sqrt(k + 1),   k = floor((h - 1) / m)

where ``T`` is the series length, ``m`` the season length and ``σ̂`` the residual standard
deviation ``σ̂² = Σ e_t² / (N - K)`` over the ``N`` non-missing in-sample residuals with ``K``
estimated parameters (1 for Mean, 0 otherwise). With ``N - K <= 0`` (a single observation)
``σ̂`` is undefined (NaN) and the node has no interval.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from htsforecast.models._protocol import ModelOutput, Panel

if TYPE_CHECKING:
    from htsforecast.models._execution import Executor

__all__ = ["Mean", "Naive", "SeasonalNaive", "season_length_for"]

_SEASONS = {"Y": 1, "A": 1, "Q": 4, "M": 12, "W": 52, "D": 7, "B": 5, "H": 24, "h": 24}


def season_length_for(freq: str) -> int:
    """Usual seasonal period of a pandas frequency: 12 for ``"MS"``, 4 for ``"QS"``, 7 for ``"D"``.

    Multiples (``"2MS"``) and unknown aliases give 1 (no seasonality).
    """
    offset = pd.tseries.frequencies.to_offset(freq)
    if offset.n != 1:
        return 1
    code = offset.rule_code.split("-")[0]
    for prefix in (code, code[:1]):
        if prefix in _SEASONS:
            return _SEASONS[prefix]
    return 1


def _group_index(panel: Panel) -> tuple[np.ndarray, np.ndarray]:
    """(series index of every row, position of every row inside its series)."""
    group = np.repeat(np.arange(panel.n_series), panel.lengths)
    pos = np.arange(len(panel.y)) - panel.indptr[:-1][group]
    return group, pos


def _lagged(panel: Panel, lag: int) -> np.ndarray:
    """``y_{t-lag}`` within each series (NaN for the first ``lag`` rows of each)."""
    _, pos = _group_index(panel)
    out = np.full(len(panel.y), np.nan)
    if lag < len(panel.y):
        out[lag:] = panel.y[:-lag] if lag else panel.y
    out[pos < lag] = np.nan
    return out


def _sigma(panel: Panel, fitted: np.ndarray, n_params: int) -> np.ndarray:
    """Residual sd per series: sqrt(Σ e² / (N - K)), NaN where N - K <= 0."""
    group, _ = _group_index(panel)
    resid = panel.y - fitted
    ok = np.isfinite(resid)
    sse = np.bincount(group[ok], weights=resid[ok] ** 2, minlength=panel.n_series)
    dof = np.bincount(group[ok], minlength=panel.n_series) - n_params
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(dof > 0, np.sqrt(sse / np.maximum(dof, 1)), np.nan)


def _output(
    mean: np.ndarray, fitted: np.ndarray, sd: np.ndarray, level: tuple[int, ...]
) -> ModelOutput:
    """Gaussian intervals ``mean ± z · sd`` for every level (``sd`` has the shape of ``mean``)."""
    lo, hi = {}, {}
    for lv in level:
        z = NormalDist().inv_cdf(0.5 + lv / 200.0)
        lo[lv], hi[lv] = mean - z * sd, mean + z * sd
    return ModelOutput(mean=mean, fitted=fitted, lo=lo, hi=hi)


@dataclass(frozen=True)
class Naive:
    """Last observed value: ``ŷ_{T+h} = y_T``; fitted ``y_{t-1}``; ``σ̂_h = σ̂·sqrt(h)``."""

    min_obs: ClassVar[int] = 1

    def fit_predict(
        self, panel: Panel, h: int, level: tuple[int, ...], executor: Executor
    ) -> ModelOutput:
        """Forecast every series of ``panel`` (see module docstring for the formulas)."""
        fitted = _lagged(panel, 1)
        last = panel.y[panel.indptr[1:] - 1]
        mean = np.repeat(last[:, None], h, axis=1)
        sd = _sigma(panel, fitted, 0)[:, None] * np.sqrt(np.arange(1, h + 1))[None, :]
        return _output(mean, fitted, sd, level)


@dataclass(frozen=True)
class SeasonalNaive:
    """Same season last year: ``ŷ_{T+h} = y_{T+h-m(k+1)}``, ``k = floor((h-1)/m)``.

    Fitted ``y_{t-m}`` (NaN for the first season); ``σ̂_h = σ̂·sqrt(k+1)``. Needs at least
    ``season_length`` observations (shorter series fall back).
    """

    season_length: int

    def __post_init__(self) -> None:
        if int(self.season_length) < 1:
            raise ValueError(f"season_length must be >= 1, got {self.season_length}.")

    @property
    def min_obs(self) -> int:
        """A full season of history."""
        return int(self.season_length)

    def fit_predict(
        self, panel: Panel, h: int, level: tuple[int, ...], executor: Executor
    ) -> ModelOutput:
        """Forecast every series of ``panel`` (see module docstring for the formulas)."""
        m = int(self.season_length)
        fitted = _lagged(panel, m)
        steps = np.arange(1, h + 1)
        k = (steps - 1) // m
        back = m * (k + 1) - steps  # 0 = last observation
        rows = panel.indptr[1:, None] - 1 - back[None, :]
        mean = panel.y[np.clip(rows, 0, None)]
        sd = _sigma(panel, fitted, 0)[:, None] * np.sqrt(k + 1)[None, :]
        out = _output(mean, fitted, sd, level)
        short = np.flatnonzero(panel.lengths < m)
        reason = f"too short for SeasonalNaive (fewer than season_length={m} observations)"
        return replace(out, failures={int(i): reason for i in short})


@dataclass(frozen=True)
class Mean:
    """Historical mean: ``ŷ_{T+h} = ȳ``; fitted ``ȳ``; ``σ̂_h = σ̂·sqrt(1 + 1/T)``."""

    min_obs: ClassVar[int] = 1

    def fit_predict(
        self, panel: Panel, h: int, level: tuple[int, ...], executor: Executor
    ) -> ModelOutput:
        """Forecast every series of ``panel`` (see module docstring for the formulas)."""
        group, _ = _group_index(panel)
        lengths = panel.lengths
        means = np.bincount(group, weights=panel.y, minlength=panel.n_series) / lengths
        fitted = means[group]
        mean = np.repeat(means[:, None], h, axis=1)
        sd = _sigma(panel, fitted, 1) * np.sqrt(1.0 + 1.0 / lengths)
        return _output(mean, fitted, np.repeat(sd[:, None], h, axis=1), level)
