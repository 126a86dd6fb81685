"""Base forecasters fitted at every node by :func:`htsforecast.forecast`.

* :class:`StatsForecastModel` — any statsforecast model (AutoETS, AutoARIMA, AutoTheta ...), all
  nodes through one ``StatsForecast`` call.
* :class:`ProphetModel` — Prophet per node in parallel processes, per-node settings, sample paths.
* :class:`Naive`, :class:`SeasonalNaive`, :class:`Mean` — fast vectorised benchmarks (FPP §5.5
  Gaussian intervals), also the default fallbacks.
* :class:`Combination` — several models averaged at every node (equal or inverse-CV-error
  weights), :class:`Selected` — the best candidate per node by cross-validation on the training
  data (intermittent nodes may get their own candidates).
* :class:`Conformal` — any model with split-conformal intervals from its h-step backtest errors.
* :class:`IntermittentModel` — Croston / ADIDA / IMAPA / TSB with intervals.
* :class:`MLForecastModel` — one LightGBM trained across all nodes (mlforecast; extra ``ml``).
* :class:`PartialPooling` — sparse bottom series as empirical-Bayes shrunk shares (level and
  seasonal profile) of their parent's forecast.
* :class:`Forecaster` (protocol) / :class:`SeriesForecaster` (base class) — plug in your own.
* :class:`Executor` / :class:`LocalExecutor` — where per-node work runs.
"""

from __future__ import annotations

from htsforecast.models._auto import auto_model
from htsforecast.models._baseline import Mean, Naive, SeasonalNaive, season_length_for
from htsforecast.models._combination import Combination
from htsforecast.models._conformal import Conformal
from htsforecast.models._execution import Executor, LocalExecutor
from htsforecast.models._intermittent import IntermittentModel, intermittent_models
from htsforecast.models._mlforecast import MLForecastModel
from htsforecast.models._pooled import PartialPooling
from htsforecast.models._prophet import ProphetModel
from htsforecast.models._protocol import (
    Forecaster,
    ModelOutput,
    Panel,
    SeriesForecast,
    SeriesForecaster,
)
from htsforecast.models._selected import Selected
from htsforecast.models._statsforecast import StatsForecastModel

__all__ = [
    "Combination",
    "Conformal",
    "Executor",
    "Forecaster",
    "IntermittentModel",
    "MLForecastModel",
    "LocalExecutor",
    "Mean",
    "ModelOutput",
    "Naive",
    "Panel",
    "PartialPooling",
    "ProphetModel",
    "SeasonalNaive",
    "Selected",
    "SeriesForecast",
    "SeriesForecaster",
    "StatsForecastModel",
    "auto_model",
    "intermittent_models",
    "season_length_for",
]
