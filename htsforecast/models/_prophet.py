"""Prophet at every node, nodes fitted in parallel worker processes.

In the spirit of htsprophet (one Prophet per node, with per-node settings) on today's ``prophet``
package: fits run through the executor (``n_jobs`` loky processes), cmdstanpy's and prophet's
logging is silenced inside the fits, intervals come from Prophet's own predictive simulation, and
the simulated paths can be kept for probabilistic reconciliation.
"""

from __future__ import annotations

import difflib
import logging
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
_OWN_KEYS = (*_DATA_KEYS, "regressor_prior_scale")  # per-node keys that are not Prophet(...) args


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
    regressor_prior_scale : float or mapping column -> float, optional
        Prior scale of the exogenous regressors (``forecast(..., X_future=...)``), each added
        with ``Prophet.add_regressor``; default Prophet's (``holidays_prior_scale``, 10).
        ``per_node={"state=MN": {"regressor_prior_scale": 0.5}}`` overrides it for one node.
    regressor_mode : {"additive", "multiplicative"}, optional
        ``mode`` of ``add_regressor`` (default: Prophet's ``seasonality_mode``).
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
    uses_exog = True

    def __init__(
        self,
        *,
        per_node: Mapping[str, Mapping[str, Any]] | None = None,
        n_samples: int | None = None,
        seed: int = 0,
        configure: Callable[[Any, str], None] | None = None,
        regressor_prior_scale: float | Mapping[str, float] | None = None,
        regressor_mode: str | None = None,
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
        self.defaults = {"cap": cap, "floor": floor, "regressor_prior_scale": regressor_prior_scale}
        self.regressor_mode = regressor_mode
        self.prophet_kwargs = dict(prophet_kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.prophet_kwargs.items())
        return f"ProphetModel({args})"

    def worker_context(self) -> Any:
        """Silence cmdstanpy / prophet logging around the fits."""
        return quiet_prophet()

    def fit_predict(self, panel: Any, h: int, level: tuple[int, ...], executor: Any) -> Any:
        """Warn about ``per_node`` keys that match no node, then fit every node."""
        warn_unknown_nodes(self.per_node, panel.ids, "ProphetModel(per_node=...)")
        return super().fit_predict(panel, h, level, executor)

    def _settings(self, uid: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(Prophet constructor kwargs, own settings: cap, floor, regressor_prior_scale)."""
        node = self.per_node.get(uid, {})
        own = {k: node.get(k, self.defaults[k]) for k in _OWN_KEYS}
        kwargs = {**self.prophet_kwargs, **{k: v for k, v in node.items() if k not in _OWN_KEYS}}
        return kwargs, {k: v for k, v in own.items() if v is not None}

    def _add_regressors(self, model: Any, X: pd.DataFrame, scale: Any) -> None:
        for col in X.columns:
            prior = scale.get(col) if isinstance(scale, Mapping) else scale
            model.add_regressor(col, prior_scale=prior, mode=self.regressor_mode)

    def fit_predict_series(
        self,
        uid: str,
        ds: np.ndarray,
        y: np.ndarray,
        h: int,
        level: tuple[int, ...],
        future_ds: np.ndarray,
        X: pd.DataFrame | None = None,
        X_future: pd.DataFrame | None = None,
    ) -> SeriesForecast:
        """Fit Prophet to one node and forecast ``future_ds`` (regressors ``X``, ``X_future``)."""
        from prophet import Prophet

        kwargs, data = self._settings(uid)
        scale = data.pop("regressor_prior_scale", None)
        if self.n_samples is not None:
            kwargs["uncertainty_samples"] = self.n_samples
        elif not level:
            kwargs["uncertainty_samples"] = 0
        n = len(y)
        frame = pd.DataFrame({"ds": np.concatenate([ds, future_ds])})
        for col, value in data.items():
            frame[col] = np.broadcast_to(np.asarray(value, dtype=float), (n + h,))
        model = Prophet(**kwargs)
        if X is not None and X_future is not None and len(X.columns):
            frame = pd.concat([frame, pd.concat([X, X_future], ignore_index=True)], axis=1)
            self._add_regressors(model, X, scale)
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


def warn_unknown_nodes(keys: Iterable[str], node_ids: Sequence[str], what: str) -> None:
    """One warning naming the keys that are not node ids (a typo would be ignored silently)."""
    known = set(node_ids)
    unknown = [k for k in keys if k not in known]
    if not unknown:
        return
    hints = []
    for key in unknown[:5]:
        close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
        close = close or [n for n in known if n.lower() == key.lower()][:1]
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    warnings.warn(
        f"{what}: {len(unknown)} key(s) match no node and are ignored: {', '.join(hints)}{more}. "
        "Keys are node ids such as 'total' or 'lang=de/access=mobile' (see hier.node_ids).",
        UserWarning,
        stacklevel=3,
    )


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
