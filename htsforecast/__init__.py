"""htsforecast: hierarchical and grouped time-series forecasting.

Describe the structure once (``Hierarchy.from_formula("(state / county) * floor")``), fit a base
forecaster at every node (:func:`forecast`), reconcile the forecasts so they add up
(:func:`reconcile`), and pick the best method per level by rolling-origin cross-validation
(:func:`cross_validate`).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from htsforecast._exog import LevelCovariate
from htsforecast._forecast import BaseForecasts, FallbackWarning, forecast
from htsforecast.errors import (
    DataError,
    FormulaError,
    HierarchyError,
    HTSError,
    ReconciliationError,
)
from htsforecast.hierarchy import Hierarchy
from htsforecast.reconciliation import Reconciled, reconcile

__version__ = "0.1.0"

# ``forecast`` and ``reconcile`` are functions; their modules are ``htsforecast._forecast`` (private)
# and the subpackage ``htsforecast.reconciliation`` (the methods), so no function hides a module.
# The rest resolve lazily so that ``import htsforecast`` stays cheap.
_LAZY = {
    "cross_validate": "htsforecast._cv",
    "evaluate": "htsforecast._evaluate",
    "Pipeline": "htsforecast.pipeline",
    "CVResult": "htsforecast._cv",
    "select_best": "htsforecast.selection",
    "forecast_best": "htsforecast.selection",
    "Selection": "htsforecast.selection",
    "interval_factors": "htsforecast._calibration",
    "calibrate_intervals": "htsforecast._calibration",
}

__all__ = [
    "HTSError",
    "HierarchyError",
    "FormulaError",
    "DataError",
    "ReconciliationError",
    "__version__",
    "Hierarchy",
    "LevelCovariate",
    "forecast",
    "BaseForecasts",
    "FallbackWarning",
    "reconcile",
    "Reconciled",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'htsforecast' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
