"""The ``auto`` preset: an equal-weight combination on regular nodes, a per-node choice among
intermittent-demand models and a global LightGBM on sparse ones (what ``htsforecast run
--models auto`` fits)."""

from __future__ import annotations

from typing import Any

from htsforecast.models._combination import Combination
from htsforecast.models._intermittent import intermittent_models
from htsforecast.models._selected import Selected

__all__ = ["auto_model", "LIGHT_OBS"]

#: Above this many observations (all nodes together) ``auto`` uses its light set.
LIGHT_OBS = 100_000


def auto_model(season_length: int, n_obs: int | None = None) -> Selected:
    """The ``--models auto`` preset: a :class:`Selected` over two groups of nodes.

    * **Regular nodes** (average inter-demand interval <= 1.32) all get ``combo``, the
      equal-weight :class:`Combination` of AutoETS (statsforecast's full ``"ZZZ"`` search),
      AutoARIMA and Dynamic Optimised Theta. There is no per-node choice among single models:
      measured on the training windows of the job, choosing per node from three backtest
      origins (the previous preset: ``combo`` / ``ets`` / ``arima`` / ``theta`` / LightGBM with
      a one-standard-error preference for ``combo``) scored *worse* than the plain combination
      (prison: job CV MASE 1.526 against 1.477), as the literature on per-series selection
      from few windows leads one to expect (Fildes & Petropoulos 2015; Kourentzes et al.
      2019), and it cost a nested backtest (three extra fits per origin of the job's CV).
    * **Intermittent nodes** (more zeros, see
      :data:`~htsforecast.models._selected.ADI_THRESHOLD`) choose, by MASE over 3 rolling
      origins of ``h`` steps at the end of the data given (training data only), one season
      apart (``h`` apart when ``m = 1``), among ``croston`` (optimised Croston), ``adida``,
      ``imapa``, ``tsb`` and ``lgbm_median`` (:class:`MLForecastModel`, one LightGBM over these
      nodes trained on absolute loss without differencing: a global model of the conditional
      *median*). ``lgbm_median`` is left out when ``mlforecast`` / ``lightgbm`` are not
      installed.

    Members are fitted once per training cut and memoised per series, so the job's outer
    cross-validation windows refit nothing they have already seen.

    **Light set** (``n_obs`` > :data:`LIGHT_OBS`, e.g. the radon panel with 1,367 nodes x 240
    months): no AutoARIMA (``combo`` = ETS + Theta), ETS restricted to additive seasonality
    without damping (``"ZZA"``), one origin for the intermittent choice.
    """
    from statsforecast.models import AutoARIMA, AutoETS, DynamicOptimizedTheta

    from htsforecast.models._statsforecast import StatsForecastModel

    m = season_length
    light = n_obs is not None and n_obs > LIGHT_OBS
    if light:
        ets = StatsForecastModel(AutoETS(season_length=m, model="ZZA" if m > 1 else "ZZN",
                                         damped=False))  # fmt: skip
    else:
        ets = StatsForecastModel(AutoETS(season_length=m))
    members: dict[str, Any] = {"ets": ets}
    if not light:
        members["arima"] = StatsForecastModel(AutoARIMA(season_length=m))
    members["theta"] = StatsForecastModel(DynamicOptimizedTheta(season_length=m))
    intermittent: dict[str, Any] = dict(intermittent_models())
    if _has_lgbm():
        from htsforecast.models._mlforecast import MLForecastModel

        median = MLForecastModel(season_length=m, differences=[], lgbm_params={"objective": "l1"})
        intermittent["lgbm_median"] = median
    return Selected(
        {"combo": Combination(members)},  # type: ignore[dict-item]  # values are Forecasters
        metric="mase",
        n_windows=1 if light else 3,
        step=m if m > 1 else None,
        season_length=m,
        intermittent=intermittent,
    )


def _has_lgbm() -> bool:
    try:
        import lightgbm  # noqa: F401
        import mlforecast  # noqa: F401
    except ImportError:
        return False
    return True
