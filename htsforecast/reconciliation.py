"""Alias of :mod:`htsforecast.reconcile` (the name used in the FPP-based issue text)."""

from htsforecast.reconcile import *  # noqa: F401,F403
from htsforecast.reconcile import __all__  # noqa: F401
