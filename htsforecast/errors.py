"""Exception hierarchy.

Every error htsforecast raises on purpose derives from :class:`HTSError`. Those
caused by bad input values are also :class:`ValueError`, so generic ``except
ValueError`` code keeps working.
"""

from __future__ import annotations

__all__ = [
    "HTSError",
    "HierarchyError",
    "DataError",
    "FormulaError",
    "ReconciliationError",
    "DataWarning",
]


class HTSError(Exception):
    """Base class of every htsforecast error."""


class HierarchyError(HTSError, ValueError):
    """The hierarchy (formula, S matrix, tags) is invalid or inconsistent with the data."""


class FormulaError(HierarchyError):
    """A hierarchy formula such as ``"(state / county) * floor"`` cannot be parsed."""


class DataError(HTSError, ValueError):
    """Input data is malformed: missing columns, NaN, duplicates, gaps, off-frequency dates."""


class ReconciliationError(HTSError, ValueError):
    """A reconciliation method cannot be applied to the given hierarchy or forecasts."""


class DataWarning(UserWarning):
    """The data was accepted, but a documented policy changed how it is read (e.g. a series that
    ends early is treated as closed)."""
