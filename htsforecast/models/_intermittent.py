"""Intermittent-demand models (statsforecast's Croston family) with prediction intervals.

statsforecast's ``CrostonOptimized``, ``ADIDA``, ``IMAPA`` and ``TSB`` give point forecasts and
in-sample fitted values but no intervals unless they are built with conformal settings.
:class:`IntermittentModel` runs one of them through :class:`StatsForecastModel` (all nodes in
one call) and adds a documented Gaussian interval.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from htsforecast.models._baseline import _output, _sigma
from htsforecast.models._protocol import ModelOutput, Panel
from htsforecast.models._statsforecast import StatsForecastModel

if TYPE_CHECKING:
    from htsforecast.models._execution import Executor

__all__ = ["IntermittentModel", "intermittent_models"]


class IntermittentModel:
    """A statsforecast intermittent-demand model with Gaussian intervals.

    Parameters
    ----------
    model
        ``CrostonOptimized()``, ``CrostonClassic()``, ``CrostonSBA()``, ``ADIDA()``,
        ``IMAPA()`` or ``TSB(alpha_d, alpha_p)`` from ``statsforecast.models``.

    Notes
    -----
    These methods forecast a flat mean demand rate. The interval is ``ŷ ± z σ̂`` with ``σ̂`` the
    standard deviation of the in-sample one-step residuals (``Σ e² / N``) and the same width at
    every horizon: the methods assume a stationary demand process, whose forecast error does not
    grow with the horizon. Point forecasts and fitted values are exactly statsforecast's.
    """

    min_obs = 2

    def __init__(self, model: Any) -> None:
        self.inner = StatsForecastModel(model, min_obs=self.min_obs)

    def __repr__(self) -> str:
        return f"IntermittentModel({self.inner.model!r})"

    def fit_predict(
        self, panel: Panel, h: int, level: tuple[int, ...], executor: Executor
    ) -> ModelOutput:
        """Forecast every series with one statsforecast call; intervals as in the notes."""
        with warnings.catch_warnings():  # "computing fitted values ... is very expensive"
            warnings.simplefilter("ignore", UserWarning)
            out = self.inner.fit_predict(panel, h, (), executor)
        sd = _sigma(panel, out.fitted, 0)
        full = _output(out.mean, out.fitted, np.repeat(sd[:, None], h, axis=1), level)
        return replace(full, failures=dict(out.failures))


def intermittent_models() -> dict[str, IntermittentModel]:
    """The four intermittent-demand models of the CLI: croston, adida, imapa, tsb.

    TSB's smoothing parameters are fixed at ``alpha_d = alpha_p = 0.1`` (statsforecast does not
    optimise them; 0.1 is the customary default of the intermittent-demand literature).
    """
    from statsforecast.models import ADIDA, IMAPA, TSB, CrostonOptimized

    return {
        "croston": IntermittentModel(CrostonOptimized()),
        "adida": IntermittentModel(ADIDA()),
        "imapa": IntermittentModel(IMAPA()),
        "tsb": IntermittentModel(TSB(alpha_d=0.1, alpha_p=0.1)),
    }
