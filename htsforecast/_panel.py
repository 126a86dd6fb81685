"""The validated panel: what moves between modules once the input has been checked.

:func:`htsforecast.validation.validate_panel` builds it once at the boundary; forecasting,
reconciliation and cross-validation then work on its arrays, never on the frame again.
Cross-validation slices it at each cutoff (:meth:`ValidPanel.cut`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from htsforecast.models._protocol import Panel

__all__ = ["ValidPanel"]


@dataclass(frozen=True, eq=False)
class ValidPanel:
    """Every series on one time grid, checked (no duplicates, on ``freq``, no gaps, finite).

    Attributes
    ----------
    ids : ndarray of object (str), shape (n,)
        Series ids, in panel order (the hierarchy's node order when validated against one).
    dates : DatetimeIndex, shape (T,)
        The ``freq`` grid from the first to the last date of the data.
    values : ndarray of float64, shape (n, T)
        ``values[i, t]`` is series ``i`` at ``dates[t]``; NaN outside the series' own span
        ``start[i] <= t < end[i]`` (there are no NaN inside it).
    start, end : ndarray of int64, shape (n,)
        Each series' span on the grid (``end`` exclusive).
    freq : str
        The pandas offset alias the grid was built with.
    """

    ids: np.ndarray
    dates: pd.DatetimeIndex
    values: np.ndarray
    start: np.ndarray
    end: np.ndarray
    freq: str

    @property
    def n_series(self) -> int:
        """Number of series."""
        return len(self.ids)

    @property
    def n_obs(self) -> int:
        """Number of observations (cells inside the spans)."""
        return int((self.end - self.start).sum())

    def mask(self) -> np.ndarray:
        """Boolean (n, T): True inside each series' span."""
        t = np.arange(len(self.dates))
        return (t >= self.start[:, None]) & (t < self.end[:, None])

    def cut(self, t: int) -> ValidPanel:
        """The panel of the first ``t`` dates (a training window ending at ``dates[t - 1]``).

        Series without an observation before the cut are left out.
        """
        keep = self.start < t
        return ValidPanel(
            ids=self.ids[keep],
            dates=self.dates[:t],
            values=self.values[keep, :t],
            start=self.start[keep],
            end=np.minimum(self.end[keep], t),
            freq=self.freq,
        )

    def reorder(self, ids: list[str] | np.ndarray) -> ValidPanel:
        """The same panel with its series in the order ``ids`` (a permutation of ``self.ids``)."""
        pos = pd.Index(self.ids).get_indexer(ids)
        return ValidPanel(
            np.asarray(ids, dtype=object),
            self.dates,
            self.values[pos],
            self.start[pos],
            self.end[pos],
            self.freq,
        )

    def observed_columns(self) -> np.ndarray:
        """Boolean (T,): dates at which at least one series is observed."""
        covered = np.zeros(len(self.dates) + 1, dtype=np.int64)
        np.add.at(covered, self.start, 1)
        np.add.at(covered, self.end, -1)
        return np.cumsum(covered)[:-1] > 0

    def dense(self, ragged: np.ndarray) -> np.ndarray:
        """Scatter values aligned with :meth:`to_model_panel`'s ``y`` into an (n, T) array."""
        out = np.full(self.values.shape, np.nan)
        out[self.mask()] = ragged
        return out

    def to_model_panel(self) -> Panel:
        """The ragged "grouped array" the models take (series back to back, by date)."""
        from htsforecast.models._protocol import Panel

        mask = self.mask()
        lengths = self.end - self.start
        cols = np.broadcast_to(np.arange(len(self.dates)), mask.shape)[mask]
        return Panel(
            ids=self.ids,
            indptr=np.r_[0, np.cumsum(lengths)].astype(np.int64),
            ds=self.dates.to_numpy(dtype="datetime64[ns]")[cols],
            y=self.values[mask],
            freq=self.freq,
        )
