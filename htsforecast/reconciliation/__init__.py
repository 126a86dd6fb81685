"""Forecast reconciliation: every method is a projection ``P``; one kernel applies ``S P ŷ``.

>>> from htsforecast.reconciliation import BottomUp, TopDown, MiddleOut, MinTrace, reconcile
"""

from __future__ import annotations

from htsforecast.reconciliation._api import Reconciled, from_nixtla_frames, reconcile
from htsforecast.reconciliation._methods import ERM, BottomUp, MiddleOut, MinTrace, TopDown

__all__ = [
    "reconcile",
    "Reconciled",
    "from_nixtla_frames",
    "BottomUp",
    "TopDown",
    "MiddleOut",
    "MinTrace",
    "ERM",
]
