"""A global machine-learning model: one LightGBM trained across all nodes via Nixtla mlforecast.

Install with ``pip install "htsforecast[ml]"`` (mlforecast and lightgbm).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from htsforecast.errors import DataError
from htsforecast.models._protocol import ModelOutput, Panel

if TYPE_CHECKING:
    from htsforecast.models._execution import Executor

__all__ = ["MLForecastModel"]

_DATE_FEATURES = {"Q": ["quarter"], "M": ["month"], "W": ["week"], "D": ["dayofweek", "month"]}


def _default_lags(m: int) -> list[int]:
    """1..m and 2m (a season back, two seasons back); 1, 2, 3 without seasonality."""
    return sorted({1, 2, 3, *range(1, m + 1), *([2 * m] if m > 1 else [])})


@dataclass(eq=False)
class MLForecastModel:
    """LightGBM trained on every node at once (a *global* model), through mlforecast.

    Parameters
    ----------
    season_length : int
        Season ``m`` (4 quarterly, 12 monthly); sets the default lags and differences.
    lags : list of int, optional
        Lagged target features. Default ``1..m`` and ``2m``.
    rolling_mean : int or None
        Adds the mean of the last ``rolling_mean`` values (at lag 1) as a feature; default ``m``.
    date_features : list of str, optional
        pandas date attributes used as features; default from the frequency (``quarter`` for
        quarterly, ``month`` for monthly).
    differences : list of int, optional
        Target differences taken before training (and undone on the forecasts); default
        ``[m]`` (a seasonal difference) when ``m > 1``, else none. ``[]`` disables them.
    scaler : bool
        Standardise each series (``LocalStandardScaler``) so that one model serves aggregates
        and bottoms of very different size.
    lgbm_params : dict, optional
        Passed to ``lightgbm.LGBMRegressor`` (e.g. ``{"objective": "l1"}`` for median
        forecasts, ``n_estimators``, ``learning_rate``).
    conformal_windows : int
        Backtest windows of mlforecast's conformal intervals (``PredictionIntervals(n_windows,
        h)``); series too short for them fall back.
    seed, num_threads : int
        LightGBM's ``random_state`` and threads; with ``deterministic=True`` the fit is
        reproducible for a fixed seed and thread count.

    Notes
    -----
    * Features are computed from the data given only (lags, rolling means, the dates), so in a
      cross-validation fold nothing from the test period enters; forecasts are recursive.
    * In-sample fitted values are mlforecast's one-step fitted values
      (``fit(fitted=True)``), NaN on the first rows of each series that have no full feature
      row; residuals therefore exist and MinTrace ``wls_var`` / ``mint_*`` work.
    * Intervals: mlforecast's conformal distribution (``level`` percent) from ``conformal_windows``
      windows of ``h`` steps at the end of the training data.
    * Series shorter than ``min_obs_for(h)`` are reported as failures (the fallback takes them).
    """

    season_length: int = 1
    lags: Sequence[int] | None = None
    rolling_mean: int | None = -1
    date_features: Sequence[str] | None = None
    differences: Sequence[int] | None = None
    scaler: bool = True
    lgbm_params: Mapping[str, Any] = field(default_factory=dict)
    conformal_windows: int = 2
    seed: int = 0
    num_threads: int = 1

    def __post_init__(self) -> None:
        if int(self.season_length) < 1:
            raise DataError(f"season_length must be >= 1, got {self.season_length}.")
        if self.conformal_windows < 2:
            raise DataError("conformal_windows must be >= 2 (mlforecast needs two windows).")

    def __repr__(self) -> str:
        return f"MLForecastModel(season_length={self.season_length}, lgbm_params={dict(self.lgbm_params)})"

    # ------------------------------------------------------------------ settings
    def _lags(self) -> list[int]:
        return sorted(self.lags) if self.lags is not None else _default_lags(self.season_length)

    def _diffs(self) -> list[int]:
        if self.differences is not None:
            return list(self.differences)
        return [self.season_length] if self.season_length > 1 else []

    def _window(self) -> int | None:
        if self.rolling_mean == -1:
            return self.season_length if self.season_length > 1 else 3
        return self.rolling_mean

    @property
    def min_obs(self) -> int:
        """Observations needed for at least one training row (lags, differences, window)."""
        return max(self._lags()) + sum(self._diffs()) + (self._window() or 0) + 1

    def min_obs_for(self, h: int, level: tuple[int, ...]) -> int:
        """Observations needed with ``level`` (conformal windows of ``h`` steps)."""
        return self.min_obs + (self.conformal_windows * h if level else 0)

    def _date_features(self, freq: str) -> list[str]:
        if self.date_features is not None:
            return list(self.date_features)
        code = pd.tseries.frequencies.to_offset(freq).rule_code.split("-")[0]
        return _DATE_FEATURES.get(code[:1], [])

    def _mlforecast(self, freq: str) -> Any:
        import lightgbm as lgb
        from mlforecast import MLForecast
        from mlforecast.lag_transforms import RollingMean
        from mlforecast.target_transforms import Differences, LocalStandardScaler

        params = {"random_state": self.seed, "deterministic": True, "force_row_wise": True,
                  "n_jobs": self.num_threads, "verbosity": -1, "n_estimators": 200,
                  "learning_rate": 0.05, "num_leaves": 31, **dict(self.lgbm_params)}  # fmt: skip
        transforms: list[Any] = [Differences(self._diffs())] if self._diffs() else []
        if self.scaler:
            transforms.append(LocalStandardScaler())
        window = self._window()
        return MLForecast(
            models={"lgbm": lgb.LGBMRegressor(**params)},
            freq=freq,
            lags=self._lags(),
            lag_transforms={1: [RollingMean(window_size=window)]} if window else None,
            date_features=self._date_features(freq),
            target_transforms=transforms or None,
            num_threads=1,
        )

    # ------------------------------------------------------------------ fit
    def fit_predict(
        self, panel: Panel, h: int, level: tuple[int, ...], executor: Executor
    ) -> ModelOutput:
        """Train one LightGBM on every long-enough series of ``panel`` and forecast ``h`` steps."""
        out = ModelOutput.empty(panel.n_series, h, level, len(panel.y))
        need = self.min_obs_for(h, level)
        short = panel.lengths < need
        failures = {int(i): f"too short for MLForecastModel (needs >= {need} observations)"
                    for i in np.flatnonzero(short)}  # fmt: skip
        good = np.flatnonzero(~short)
        if good.size:
            sub = panel.subset(good)
            out.place(self._fit(sub, h, level), good, panel)
        return ModelOutput(out.mean, out.fitted, out.lo, out.hi, failures=failures)

    def _fit(self, panel: Panel, h: int, level: tuple[int, ...]) -> ModelOutput:
        from mlforecast.utils import PredictionIntervals

        df = panel.to_frame()
        df["unique_id"] = df["unique_id"].astype(str)
        mlf = self._mlforecast(panel.freq)
        intervals = PredictionIntervals(n_windows=self.conformal_windows, h=h) if level else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlf.fit(df, fitted=True, prediction_intervals=intervals)
            fc = mlf.predict(h, level=list(level) or None)
            fv = mlf.forecast_fitted_values()
        ids = panel.ids.astype(str)
        fc = fc.set_index(["unique_id", "ds"])
        future = panel.future_ds(h)
        key = pd.MultiIndex.from_arrays([np.repeat(ids, h), future.ravel()])

        def block(col: str) -> np.ndarray:
            return fc[col].reindex(key).to_numpy(dtype=float).reshape(len(ids), h)

        fitted = (
            fv.set_index(["unique_id", "ds"])["lgbm"]
            .reindex(pd.MultiIndex.from_arrays([np.repeat(ids, panel.lengths), panel.ds]))
            .to_numpy(dtype=float)
        )
        lo = {lv: block(f"lgbm-lo-{lv}") for lv in level}
        hi = {lv: block(f"lgbm-hi-{lv}") for lv in level}
        return ModelOutput(block("lgbm"), fitted, lo, hi)
