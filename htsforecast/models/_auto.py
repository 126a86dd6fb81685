"""The ``auto`` preset: per-node choice among combinations, single models, intermittent-demand
models and LightGBM (what ``htsforecast run --models auto`` fits)."""

from __future__ import annotations

from typing import Any

from htsforecast.models._combination import Combination
from htsforecast.models._intermittent import intermittent_models
from htsforecast.models._selected import Selected

__all__ = ["auto_model", "LIGHT_OBS"]

#: Above this many observations (all nodes together) ``auto`` uses its light set.
LIGHT_OBS = 100_000


def auto_model(season_length: int, n_obs: int | None = None) -> Selected:
    """The ``--models auto`` preset: a :class:`Selected` over these candidates.

    Regular nodes (average inter-demand interval <= 1.32) choose among

    * ``combo``: equal-weight :class:`Combination` of ``ets``, ``arima`` and ``theta``,
    * ``ets``: AutoETS (statsforecast's full ``"ZZZ"`` search),
    * ``arima``: AutoARIMA,
    * ``theta``: Dynamic Optimised Theta,
    * ``lgbm``: :class:`MLForecastModel` (one LightGBM over all nodes, squared loss, seasonal
      differences),
    * ``lgbm_median``: the same trained on absolute loss without differencing, i.e. a global
      model of the conditional *median* (the best point forecast under absolute-error measures
      such as MASE; for skewed counts it sits below the mean);

    intermittent nodes (more zeros, see :data:`~htsforecast.models._selected.ADI_THRESHOLD`)
    choose among ``croston`` (optimised Croston), ``adida``, ``imapa``, ``tsb`` and
    ``lgbm_median``. The LightGBM candidates are left out when ``mlforecast`` / ``lightgbm`` are
    not installed.

    The choice is by MASE over 3 rolling origins of ``h`` steps at the end of the data given
    (training data only), one season apart (``h`` apart when ``m = 1``). A node keeps ``combo``
    unless another candidate beats it by more than one standard error over those windows
    (``Selected(prefer="combo")``): per-node selection from a few windows is noisy, and the
    equal-weight combination is the robust default. Members are shared, so each model is
    fitted once per origin, and fits of identical data are reused across calls.

    **Light set** (``n_obs`` > :data:`LIGHT_OBS`, e.g. the radon panel with 1,367 nodes x 240
    months): no AutoARIMA (the slowest model; ``combo`` = ``ets`` + ``theta``), ETS restricted
    to additive seasonality without damping (``"ZZA"``), one origin instead of three (so no
    preference rule: the best score wins).
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
    theta = StatsForecastModel(DynamicOptimizedTheta(season_length=m))
    members = {"ets": ets, "theta": theta}
    if not light:
        members["arima"] = StatsForecastModel(AutoARIMA(season_length=m))
    regular = {"combo": Combination(dict(members)), **members}
    intermittent: dict[str, Any] = dict(intermittent_models())
    if _has_lgbm():
        from htsforecast.models._mlforecast import MLForecastModel

        regular["lgbm"] = MLForecastModel(season_length=m)
        median = MLForecastModel(season_length=m, differences=[], lgbm_params={"objective": "l1"})
        regular["lgbm_median"] = intermittent["lgbm_median"] = median
    return Selected(
        regular,  # type: ignore[arg-type]  # values are Forecasters
        metric="mase",
        n_windows=1 if light else 3,
        step=m if m > 1 else None,
        season_length=m,
        intermittent=intermittent,
        prefer="combo",
    )


def _has_lgbm() -> bool:
    try:
        import lightgbm  # noqa: F401
        import mlforecast  # noqa: F401
    except ImportError:
        return False
    return True
