"""Holiday regressors from the ``holidays`` package (installed with Prophet).

:class:`CountryHolidays` is an ``exog`` entry of :meth:`Hierarchy.aggregate
<htsforecast.Hierarchy.aggregate>`: it builds a holiday indicator for every node, taking the
subdivision (US state, German Land, ...) from a key column when one is given::

    exog = {"promo": "sum", "holiday": CountryHolidays("US", subdivision_col="state")}
    Y = hier.aggregate(df, freq="W-SUN", exog=exog)
    X_future = hier.aggregate(future_df, freq="W-SUN", exog=exog, target_col=None)

The value of a period is 1 when one of its days is a holiday of the node's subdivision (or the
number of holiday days with ``count=True``). Nodes spanning several subdivisions take the
``rule``: ``"max"`` (a holiday somewhere below) or ``"share"`` (the share of the node's bottom
series in holiday; ``"wmean"`` weights that share by the target). Prophet users can pass the same
calendar as Prophet's own holidays instead: :meth:`CountryHolidays.prophet_per_node`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from htsforecast._exog import LevelCovariate
from htsforecast.errors import DataError

if TYPE_CHECKING:
    from htsforecast._exog import ExogGrid
    from htsforecast.hierarchy import Hierarchy

__all__ = ["CountryHolidays"]

_RULES = {"max": "max", "share": "share", "wmean": "wmean"}


@dataclass(frozen=True)
class CountryHolidays:
    """Holiday indicator of a country (and subdivision) at every node.

    Parameters
    ----------
    country : str
        ISO code known to the ``holidays`` package (``"US"``, ``"DE"``, ``"AU"`` ...).
    subdivision_col : str, optional
        Key column whose values are the country's subdivision codes (``"CA"``, ``"TX"`` ...);
        nodes inside one subdivision get its holidays (national ones included). Without it,
        every node gets the national holidays.
    rule : {"max", "share", "wmean"}
        Value at nodes spanning several subdivisions: any series below in holiday (``"max"``),
        the share of bottom series in holiday (``"share"``), that share weighted by the target
        (``"wmean"``).
    count : bool
        Number of holiday days in each period instead of a 0/1 indicator.
    names : sequence of str, optional
        Keep only holidays whose name contains one of these strings (``["Thanksgiving"]``).
    observed : bool
        Include "observed" days of holidays falling on weekends (the package's default).
    """

    country: str
    subdivision_col: str | None = None
    rule: Literal["max", "share", "wmean"] = "max"
    count: bool = False
    names: Sequence[str] | None = None
    observed: bool = True

    def __post_init__(self) -> None:
        if self.rule not in _RULES:
            raise DataError(
                f"CountryHolidays rule must be one of {', '.join(_RULES)}, got {self.rule!r}."
            )

    # ------------------------------------------------------------------ holiday dates
    def dates(self, years: Sequence[int], subdivision: str | None = None) -> pd.DataFrame:
        """Holidays as a frame ``ds, holiday`` (one row per day and name) for ``years``."""
        import holidays

        try:
            cal = holidays.country_holidays(
                self.country, subdiv=subdivision, years=list(years), observed=self.observed
            )
        except NotImplementedError as exc:
            where = f" (from key column '{self.subdivision_col}')" if subdivision else ""
            raise DataError(f"CountryHolidays: {exc}{where}.") from None
        rows = [(pd.Timestamp(day), name) for day, name in sorted(cal.items())]
        out = pd.DataFrame(rows, columns=["ds", "holiday"])
        if self.names is not None:
            keep = out["holiday"].apply(lambda n: any(s in n for s in self.names))
            out = out[keep.to_numpy(dtype=bool)]
        return out.reset_index(drop=True)

    # ------------------------------------------------------------------ as a regressor
    def to_covariate(self, name: str, g: ExogGrid) -> LevelCovariate:
        """The indicator as a :class:`LevelCovariate` on the grid of an aggregation."""
        periods = _periods(g.grid, name)
        on = self.subdivision_col or str(g.bottom_keys.columns[0])
        if on not in g.bottom_keys.columns:
            raise DataError(
                f"CountryHolidays for '{name}': subdivision_col '{on}' is not a key column "
                f"of the hierarchy ({', '.join(map(str, g.bottom_keys.columns))})."
            )
        values = pd.unique(g.bottom_keys[on].astype(str))
        frames = []
        cache: dict[str | None, np.ndarray] = {}
        for value in values:
            sub = value if self.subdivision_col else None
            if sub not in cache:
                cache[sub] = self._per_period(periods, sub)
            frames.append(pd.DataFrame({on: value, g.time_col: g.grid, name: cache[sub]}))
        return LevelCovariate(pd.concat(frames, ignore_index=True), on=on, rule=_RULES[self.rule])

    def indicator(self, grid: pd.DatetimeIndex, subdivision: str | None = None) -> np.ndarray:
        """The indicator (or day count) for each date of ``grid`` (a regular pandas grid)."""
        return self._per_period(_periods(pd.DatetimeIndex(grid), "indicator"), subdivision)

    def _per_period(self, periods: pd.PeriodIndex, subdivision: str | None) -> np.ndarray:
        """Holiday days (distinct) per period, or the 0/1 indicator."""
        years = range(periods.start_time.min().year - 1, periods.end_time.max().year + 2)
        uniq = pd.DatetimeIndex(self.dates(years, subdivision)["ds"].unique())
        hit = pd.Index(periods).get_indexer(uniq.to_period(periods.freq))
        counts = np.bincount(hit[hit >= 0], minlength=len(periods)).astype(float)
        return counts if self.count else np.minimum(counts, 1.0)

    # ------------------------------------------------------------------ for Prophet
    def prophet_per_node(self, hier: Hierarchy, years: Sequence[int]) -> dict[str, dict]:
        """``per_node`` settings giving each node its holidays as Prophet's own holidays.

        Nodes inside one subdivision get that subdivision's holidays; nodes spanning several get
        the national ones. Use as ``ProphetModel(per_node=cal.prophet_per_node(hier, years))``.
        """
        national = self.dates(years)
        keys = hier.keys
        out: dict[str, dict[str, Any]] = {}
        cache: dict[str, pd.DataFrame] = {}
        for node in hier.node_ids:
            sub = None
            if self.subdivision_col is not None:
                value = str(keys.at[node, self.subdivision_col])
                sub = None if value == "<aggregated>" else value
            if sub is not None and sub not in cache:
                cache[sub] = self.dates(years, sub)
            out[node] = {"holidays": cache[sub] if sub is not None else national}
        return out


def _periods(grid: pd.DatetimeIndex, name: str) -> pd.PeriodIndex:
    """The periods the grid's dates stand for (``MS`` -> months, ``W-SUN`` -> weeks ...)."""
    freq = grid.freq or (pd.infer_freq(grid) if len(grid) >= 3 else None)
    if freq is None:
        raise DataError(
            f"CountryHolidays for '{name}' needs the time grid's frequency: pass freq= to "
            "aggregate (e.g. freq='W-SUN', 'MS', 'D')."
        )
    return pd.DatetimeIndex(grid, freq=freq).to_period()
