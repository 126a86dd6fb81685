"""Prophet at every node, nodes fitted in parallel worker processes.

In the spirit of htsprophet (one Prophet per node, with per-node settings) on today's ``prophet``
package: fits run through the executor (``n_jobs`` loky processes), cmdstanpy's and prophet's
logging is silenced inside the fits, intervals come from Prophet's own predictive simulation, and
the simulated paths can be kept for probabilistic reconciliation.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from htsforecast.models._protocol import SeriesForecast, SeriesForecaster

__all__ = ["ProphetModel"]

_QUIET = {
    "cmdstanpy": logging.CRITICAL + 1,
    "prophet": logging.ERROR,
    "prophet.plot": logging.CRITICAL + 1,
}
_DATA_KEYS = ("cap", "floor")


@contextmanager
def quiet_prophet() -> Iterator[None]:
    """Silence cmdstanpy's and prophet's INFO chatter (restored on exit).

    Both libraries configure their loggers on first use, so they are imported (and cmdstanpy's
    logger initialised) before the levels are lowered.
    """
    plot_logger = logging.getLogger("prophet.plot")
    plot_level = plot_logger.level
    plot_logger.setLevel(logging.CRITICAL + 1)  # "Importing plotly failed" on import
    try:
        import prophet  # noqa: F401
        from cmdstanpy.utils import get_logger
    finally:
        plot_logger.setLevel(plot_level)
    get_logger()
    saved = {name: logging.getLogger(name).level for name in _QUIET}
    for name, lvl in _QUIET.items():
        logging.getLogger(name).setLevel(lvl)
    try:
        yield
    finally:
        for name, lvl in saved.items():
            logging.getLogger(name).setLevel(lvl)


class ProphetModel(SeriesForecaster):
    """Fit ``prophet.Prophet`` at every node.

    Parameters
    ----------
    per_node : mapping node id -> dict, optional
        Per-node settings overriding ``prophet_kwargs`` for that node, like htsprophet's:
        any ``Prophet(...)`` argument (``changepoints``, ``holidays``, ``growth``,
        ``changepoint_prior_scale`` ...) plus ``cap`` / ``floor`` for logistic growth.
    n_samples : int, optional
        Keep this many predictive sample paths per node (``BaseForecasts.samples[name]``, shape
        (n_ids, h, n_samples)); also the number of draws behind the intervals. Default: no paths
        kept, intervals from Prophet's ``uncertainty_samples`` (1000).
    seed : int
        Seeds numpy before each node's simulation with ``seed + crc32(node id)``, so results do
        not depend on how nodes are split across processes.
    configure : callable (Prophet, node id) -> None, optional
        Called on each fresh ``Prophet`` before fitting, e.g. to ``add_seasonality`` or
        ``add_country_holidays``. Must be picklable (cloudpickle) when ``n_jobs > 1``.
    cap, floor : float or array, optional
        Logistic-growth capacity / floor for every node (scalar, or one value per history row
        followed by one per forecast step).
    **prophet_kwargs
        Passed to ``Prophet(...)`` for every node.

    Notes
    -----
    Point forecasts and fitted values are Prophet's ``yhat``. The ``L``% interval is the
    ``(50 - L/2, 50 + L/2)`` percentiles of ``Prophet.predictive_samples`` (how Prophet computes
    ``yhat_lower`` / ``yhat_upper``), so several levels come from one simulation.
    """

    min_obs = 2

    def __init__(
        self,
        *,
        per_node: Mapping[str, Mapping[str, Any]] | None = None,
        n_samples: int | None = None,
        seed: int = 0,
        configure: Callable[[Any, str], None] | None = None,
        cap: Any = None,
        floor: Any = None,
        **prophet_kwargs: Any,
    ) -> None:
        if n_samples is not None and int(n_samples) < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples}.")
        self.per_node = {str(k): dict(v) for k, v in (per_node or {}).items()}
        self.n_samples = None if n_samples is None else int(n_samples)
        self.seed = int(seed)
        self.configure = configure
        self.defaults = {"cap": cap, "floor": floor}
        self.prophet_kwargs = dict(prophet_kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.prophet_kwargs.items())
        return f"ProphetModel({args})"

    def worker_context(self) -> Any:
        """Silence cmdstanpy / prophet logging around the fits."""
        return quiet_prophet()

    def _settings(self, uid: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(Prophet constructor kwargs, data columns such as cap) for one node."""
        node = self.per_node.get(uid, {})
        data = {k: node.get(k, self.defaults[k]) for k in _DATA_KEYS}
        kwargs = {**self.prophet_kwargs, **{k: v for k, v in node.items() if k not in _DATA_KEYS}}
        return kwargs, {k: v for k, v in data.items() if v is not None}

    def fit_predict_series(
        self,
        uid: str,
        ds: np.ndarray,
        y: np.ndarray,
        h: int,
        level: tuple[int, ...],
        future_ds: np.ndarray,
    ) -> SeriesForecast:
        """Fit Prophet to one node and forecast ``future_ds``."""
        from prophet import Prophet

        kwargs, data = self._settings(uid)
        if self.n_samples is not None:
            kwargs["uncertainty_samples"] = self.n_samples
        elif not level:
            kwargs["uncertainty_samples"] = 0
        n = len(y)
        frame = pd.DataFrame({"ds": np.concatenate([ds, future_ds])})
        for col, value in data.items():
            frame[col] = np.broadcast_to(np.asarray(value, dtype=float), (n + h,))
        model = Prophet(**kwargs)
        if self.configure is not None:
            self.configure(model, uid)
        model.fit(frame.iloc[:n].assign(y=y))
        draws = model.uncertainty_samples
        model.uncertainty_samples = 0  # point predictions only; intervals from the draws below
        yhat = model.predict(frame)["yhat"].to_numpy(dtype=float)
        model.uncertainty_samples = draws
        out = SeriesForecast(mean=yhat[n:], fitted=yhat[:n])
        if not (level or self.n_samples):
            return out
        paths = _simulate(model, frame.iloc[n:].reset_index(drop=True), self.seed, uid)
        lo = {lv: np.percentile(paths, 50 - lv / 2, axis=1) for lv in level}
        hi = {lv: np.percentile(paths, 50 + lv / 2, axis=1) for lv in level}
        samples = paths if self.n_samples is not None else None
        return SeriesForecast(out.mean, out.fitted, lo, hi, samples)


def _simulate(model: Any, future: pd.DataFrame, seed: int, uid: str) -> np.ndarray:
    """Prophet's predictive sample paths (h, n_draws) under a per-node seed.

    Prophet draws from numpy's legacy global generator; its state is restored afterwards.
    """
    state = np.random.get_state()  # noqa: NPY002
    np.random.seed((seed + zlib.crc32(uid.encode())) % 2**32)  # noqa: NPY002
    try:
        return np.asarray(model.predictive_samples(future)["yhat"], dtype=float)
    finally:
        np.random.set_state(state)  # noqa: NPY002
