"""``Pipeline``: fit once, save, load and forecast later without refitting.

What "forecast later without refitting" means here (the design choice)
---------------------------------------------------------------------
``Pipeline.fit(Y)`` fits every base model at every node once, for the longest horizon the
pipeline will serve (``h_max``), and keeps what reconciliation needs: the base forecasts and
intervals (and predictive samples) up to ``h_max``, the in-sample fitted values and residuals
(from which ``wls_var``/``mint_*`` build ``W``), the hierarchy (``S``, node ids, levels) and the
method objects. ``predict(h)`` for any ``h <= h_max`` then reconciles the first ``h`` steps; no
model is refitted, so a scheduled job loads the file and answers in the time of one
:func:`htsforecast.reconcile`.

This is exact: the ``h``-step forecasts of statsforecast models, Prophet's point forecasts and
the built-in baselines are the first ``h`` steps of their ``h_max``-step forecasts, and every
reconciliation method acts on each step separately, so ``fit`` → ``save`` → ``load`` →
``predict(h)`` equals ``forecast(Y, h)`` + ``reconcile`` (tested). Two exceptions, by design:
``intervals="bootstrap"`` draws its paths per call (same seed, different draws for a different
``h``), and sample paths of stochastic models are stored for ``h_max`` steps.

Why not pickle the fitted statsforecast models and call their ``predict``? Their ``predict``
(like fable's ``forecast`` of a saved mable) also forecasts from the end of the training data
and does not learn from newer observations; it would only add a second fit path per adapter
(and a fallback model per failed node) for the same numbers. When new data arrives, fit again.

Files: ``save(path)`` writes a folder with ``pipeline.pkl`` (pickle: load only files you trust,
as with scikit-learn or statsforecast models) and a readable ``meta.json`` (settings, package
versions); loading under different versions warns.
"""

from __future__ import annotations

import json
import pickle
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from htsforecast.errors import DataError

__all__ = ["Pipeline", "VersionWarning"]

_FORMAT = 1
_PACKAGES = ("htsforecast", "numpy", "pandas", "scipy", "statsforecast")


class VersionWarning(UserWarning):
    """A saved pipeline is loaded under different package versions than it was saved with."""


def package_versions() -> dict[str, str]:
    """Versions of the packages whose behaviour a saved pipeline depends on."""
    from importlib.metadata import PackageNotFoundError, version

    import htsforecast

    out = {}
    for name in _PACKAGES:
        try:
            out[name] = htsforecast.__version__ if name == "htsforecast" else version(name)
        except PackageNotFoundError:  # pragma: no cover - optional package absent
            out[name] = "absent"
    return out


class Pipeline:
    """Base models at every node + reconciliation methods, fitted once and reused.

    Parameters
    ----------
    hier : Hierarchy
        Fitted hierarchy (after ``hier.aggregate(df)``).
    models : dict name -> model
        As for :func:`htsforecast.forecast`.
    methods : dict name -> method, optional
        As for :func:`htsforecast.reconcile` (default there: bottom-up and MinT-shrink).
    freq : str
        pandas offset alias of the data.
    h_max : int
        Longest horizon :meth:`predict` will serve (the base models forecast this far in ``fit``).
    level : list of int, optional
        Interval levels.
    intervals, n_samples, seed
        Passed to :func:`htsforecast.reconcile`.
    forecast_kwargs
        Passed to :func:`htsforecast.forecast` (``n_jobs``, ``fallback``, ``engine`` ...).

    Examples
    --------
    >>> pipe = Pipeline(hier, models, methods, freq="MS", h_max=12, level=[80])  # doctest: +SKIP
    >>> pipe.fit(Y).save("model/")                                             # doctest: +SKIP
    >>> Pipeline.load("model/").predict(6).forecasts                           # doctest: +SKIP
    """

    def __init__(
        self,
        hier: Any,
        models: Mapping[str, Any],
        methods: Mapping[str, Any] | Sequence[Any] | None = None,
        *,
        freq: str,
        h_max: int,
        level: Sequence[int] | None = None,
        intervals: str | None = "gaussian",
        n_samples: int = 1000,
        seed: int = 0,
        **forecast_kwargs: Any,
    ) -> None:
        if isinstance(h_max, bool) or not isinstance(h_max, (int, np.integer)) or h_max < 1:
            raise DataError(f"Pipeline: h_max must be a positive integer, got {h_max!r}.")
        self.hier = hier
        self.models = dict(models)
        self.methods = methods
        self.freq = freq
        self.h_max = int(h_max)
        self.level = sorted(level or [])
        self.reconcile_kwargs: dict[str, Any] = {"intervals": intervals, "n_samples": n_samples, "seed": seed}
        self.forecast_kwargs = dict(forecast_kwargs)
        self.base_: Any = None
        self.versions_: dict[str, str] = {}

    @classmethod
    def from_forecasts(
        cls, hier: Any, base: Any, methods: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Pipeline:
        """A fitted pipeline from base forecasts you already have (no refit).

        ``base`` is a :class:`~htsforecast.BaseForecasts`; its ``h`` becomes ``h_max``, its
        levels the interval levels. ``kwargs`` go to the constructor (``intervals`` ...).
        """
        kwargs.setdefault("level", base.level)
        pipe = cls(hier, {}, methods, freq=base.freq, h_max=base.h, **kwargs)
        pipe.models = {name: None for name in base.models}
        pipe.base_, pipe.versions_ = base, package_versions()
        return pipe

    def fit(self, Y: pd.DataFrame) -> Pipeline:
        """Fit every model at every node of ``Y`` (all nodes, from ``hier.aggregate``)."""
        from htsforecast._forecast import forecast

        self.base_ = forecast(
            Y, self.models, self.h_max, freq=self.freq, level=self.level or None,
            **self.forecast_kwargs,
        )  # fmt: skip
        self.versions_ = package_versions()
        return self

    def predict(self, h: int | None = None, X_future: pd.DataFrame | None = None) -> Any:
        """Reconciled forecasts of the first ``h`` steps (default ``h_max``), no refit.

        Returns a :class:`~htsforecast.Reconciled` (``.forecasts``, ``.diagnostics``,
        ``.wide()``). ``X_future`` is not accepted: the base forecasts were made at fit time,
        so future regressors must be given then; passing them here raises instead of being
        ignored.
        """
        from htsforecast.reconciliation import reconcile

        if self.base_ is None:
            raise DataError("Pipeline.predict: call fit(Y) (or Pipeline.load) first.")
        if X_future is not None:
            raise DataError(
                "Pipeline.predict: the base forecasts were made at fit time, so X_future "
                "cannot change them; give future regressors when fitting, or fit again."
            )
        h = self.h_max if h is None else h
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or not 1 <= h:
            raise DataError(f"Pipeline.predict: h must be a positive integer, got {h!r}.")
        if h > self.h_max:
            raise DataError(
                f"Pipeline.predict: h={h} is beyond h_max={self.h_max} this pipeline was fitted "
                f"for; refit with Pipeline(..., h_max={h})."
            )
        base = _first_steps(self.base_, int(h))
        return reconcile(
            base, self.hier, self.methods, level=self.level or None, **self.reconcile_kwargs
        )

    def save(self, path: str | Path) -> Path:
        """Write ``path/pipeline.pkl`` and ``path/meta.json`` (atomically); return ``path``."""
        if self.base_ is None:
            raise DataError("Pipeline.save: nothing to save; call fit(Y) first.")
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        with open(tmp / "pipeline.pkl", "wb") as fh:
            pickle.dump({"format": _FORMAT, "pipeline": self}, fh, protocol=5)
        (tmp / "meta.json").write_text(json.dumps(self.meta(), indent=2, default=str))
        if path.exists():
            for f in ("pipeline.pkl", "meta.json"):
                (path / f).unlink(missing_ok=True)
            path.rmdir()
        tmp.rename(path)
        return path

    def meta(self) -> dict[str, Any]:
        """Readable description: models, methods, horizon, levels, dates, package versions."""
        fc = self.base_.forecasts
        return {
            "format": _FORMAT,
            "models": {k: repr(v) for k, v in self.models.items()},
            "methods": _describe(self.methods),
            "freq": self.freq,
            "h_max": self.h_max,
            "level": self.level,
            "n_nodes": int(self.hier.n_nodes),
            "forecast_start": str(fc["ds"].min()),
            "versions": self.versions_,
        }

    @classmethod
    def load(cls, path: str | Path) -> Pipeline:
        """Load a saved pipeline; warns (``VersionWarning``) when package versions differ."""
        file = Path(path) / "pipeline.pkl"
        if not file.exists():
            raise DataError(f"Pipeline.load: {file} not found; save with Pipeline.save(path).")
        with open(file, "rb") as fh:
            saved = pickle.load(fh)
        if not isinstance(saved, dict) or saved.get("format") != _FORMAT:
            raise DataError(f"Pipeline.load: {file} is not a saved htsforecast Pipeline.")
        pipe: Pipeline = saved["pipeline"]
        now = package_versions()
        diff = {k: (v, now.get(k)) for k, v in pipe.versions_.items() if now.get(k) != v}
        if diff:
            text = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in diff.items())
            warnings.warn(
                f"Pipeline.load: saved under different package versions ({text}); forecasts "
                "are the saved ones, but reconciliation now runs on the new versions.",
                VersionWarning,
                stacklevel=2,
            )
        return pipe


def _first_steps(base: Any, h: int) -> Any:
    """``base`` cut to its first ``h`` forecast steps (its arrays are (n_ids, h_max))."""
    if h == base.h:
        return base
    return replace(
        base,
        h=h,
        mean={m: a[:, :h] for m, a in base.mean.items()},
        lo={m: {lv: a[:, :h] for lv, a in d.items()} for m, d in base.lo.items()},
        hi={m: {lv: a[:, :h] for lv, a in d.items()} for m, d in base.hi.items()},
        samples={m: a[:, :h] for m, a in (base.samples or {}).items()},
    )


def _describe(methods: Any) -> Any:
    if methods is None:
        return None
    if isinstance(methods, Mapping):
        return {k: repr(v) for k, v in methods.items()}
    return [repr(m) for m in methods]
