"""Fit one model at every node, refitting its failures with fallback models in turn.

A node fails when it is shorter than the model's ``min_obs``, when the model reports it in
``ModelOutput.failures`` (or raises for the whole batch), or when its forecast, fitted values or
intervals are not finite. Its first failure reason is kept for ``BaseForecasts.fallbacks``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from htsforecast.errors import HTSError
from htsforecast.models._execution import Executor
from htsforecast.models._protocol import Forecaster, ModelOutput, Panel, describe_error
from htsforecast.validation import format_examples

__all__ = ["Fit", "fit_chain"]


@dataclass
class Fit:
    """One model's merged output over all nodes, plus who fell back and why."""

    out: ModelOutput
    reasons: dict[int, str]
    used: dict[int, str]


def fit_chain(
    panel: Panel,
    chain: list[tuple[str, Forecaster]],
    h: int,
    level: tuple[int, ...],
    executor: Executor,
) -> Fit:
    """Fit ``chain[0]``; refit its failures with ``chain[1]``, then ``chain[2]`` ..."""
    n = panel.n_series
    n_samples = getattr(chain[0][1], "n_samples", None)
    mean, fitted = np.full((n, h), np.nan), np.full(len(panel.y), np.nan)
    lo = {lv: np.full((n, h), np.nan) for lv in level}
    hi = {lv: np.full((n, h), np.nan) for lv in level}
    samples = np.full((n, h, n_samples), np.nan) if n_samples else None
    reasons: dict[int, str] = {}
    used: dict[int, str] = {}
    todo = np.arange(n)
    for k, (label, model) in enumerate(chain):
        last = k == len(chain) - 1
        want = tuple(sorted({*level, 80})) if (k and samples is not None) else level
        lenient = last and k > 0  # a last-resort fallback may leave an interval undefined
        sub = panel.subset(todo)
        ok, why, out = _attempt(model, repr(model), sub, h, want, executor, lenient)
        done = todo[ok]
        mean[done] = out.mean[ok]
        fitted[panel.rows(done)] = out.fitted[sub.rows(np.flatnonzero(ok))]
        for lv in level:
            lo[lv][done], hi[lv][done] = out.lo[lv][ok], out.hi[lv][ok]
        if samples is not None and n_samples:
            samples[done] = _paths(panel, done, out, ok, n_samples, primary=k == 0, label=label)
        if k:
            used.update({int(i): label for i in done})
        reasons.update({int(todo[j]): r for j, r in why.items() if int(todo[j]) not in reasons})
        todo = todo[~ok]
        if todo.size == 0:
            break
    if todo.size:
        _raise_unfitted(panel, chain, todo, reasons)
    for i in np.flatnonzero(_no_interval(lo, hi, n)):
        used[int(i)] = f"{used.get(int(i), chain[0][0])} (no interval)"
    return Fit(ModelOutput(mean, fitted, lo, hi, samples), reasons, used)


def _no_interval(
    lo: Mapping[int, np.ndarray], hi: Mapping[int, np.ndarray], n: int
) -> np.ndarray:
    bad = np.zeros(n, dtype=bool)
    for lv in lo:
        bad |= ~(np.isfinite(lo[lv]).all(axis=1) & np.isfinite(hi[lv]).all(axis=1))
    return bad


def _attempt(
    model: Forecaster,
    label: str,
    panel: Panel,
    h: int,
    level: tuple[int, ...],
    executor: Executor,
    lenient: bool,
) -> tuple[np.ndarray, dict[int, str], ModelOutput]:
    """Run one model on ``panel``; return (ok mask, failure reasons by position, output).

    ``lenient``: accept non-finite intervals (the last fallback, e.g. one-observation series).
    """
    n = panel.n_series
    min_obs = int(getattr(model, "min_obs", 1) or 1)
    short = panel.lengths < min_obs
    why = {
        int(i): f"too short for {label} (needs >= {min_obs} observations)"
        for i in np.flatnonzero(short)
    }
    tried = np.flatnonzero(~short)
    full = ModelOutput.empty(n, h, level, len(panel.y))
    if tried.size:
        try:
            out = model.fit_predict(panel.subset(tried), h, level, executor)
            _check_shapes(out, label, len(tried), h, level, int(panel.lengths[tried].sum()))
        except HTSError:
            raise
        except Exception as exc:
            out = _nan_output(len(tried), h, level, int(panel.lengths[tried].sum()), exc)
        full = full.place(out, tried, panel)
        why.update({int(tried[j]): r for j, r in out.failures.items()})
    bad_mean = ~np.isfinite(full.mean).all(axis=1)
    bad_fit = np.isinf(full.fitted)
    bad_fit = np.bincount(np.repeat(np.arange(n), panel.lengths), weights=bad_fit, minlength=n) > 0
    bad_int = _no_interval(full.lo, full.hi, n)
    for i in np.flatnonzero(bad_mean | bad_fit | (bad_int & ~lenient)):
        why.setdefault(int(i), "non-finite forecast" if bad_mean[i] else
                       "non-finite fitted values" if bad_fit[i] else "non-finite interval")  # fmt: skip
    ok = np.ones(n, dtype=bool)
    ok[list(why)] = False
    return ok, why, full


def _check_shapes(out: ModelOutput, label: str, n: int, h: int, level: tuple, n_obs: int) -> None:
    problems = []
    if np.shape(out.mean) != (n, h):
        problems.append(f"mean has shape {np.shape(out.mean)}, expected {(n, h)}")
    if np.shape(out.fitted) != (n_obs,):
        problems.append(f"fitted has shape {np.shape(out.fitted)}, expected {(n_obs,)}")
    for lv in level:
        lo, hi = out.lo.get(lv), out.hi.get(lv)
        if lo is None or hi is None or np.shape(lo) != (n, h) or np.shape(hi) != (n, h):
            problems.append(f"lo/hi for level {lv} missing or not of shape {(n, h)}")
    if problems:
        raise HTSError(f"model {label} returned malformed output: {'; '.join(problems)}.")


def _nan_output(n: int, h: int, level: tuple, n_obs: int, exc: Exception) -> ModelOutput:
    return ModelOutput.empty(n, h, level, n_obs, dict.fromkeys(range(n), describe_error(exc)))


def _paths(
    panel: Panel,
    done: np.ndarray,
    out: ModelOutput,
    ok: np.ndarray,
    n_samples: int,
    primary: bool,
    label: str,
) -> np.ndarray:
    """Sample paths of the nodes ``done``: the model's own, or Gaussian ones for fallbacks."""
    if not primary:
        return _gaussian_paths(panel, done, out, ok, n_samples)
    if done.size and (out.samples is None or out.samples.shape[2] != n_samples):
        raise HTSError(
            f"model {label} declares n_samples={n_samples} but returned "
            f"{'no' if out.samples is None else out.samples.shape[2]} sample paths per node."
        )
    if not done.size or out.samples is None:
        return np.empty((0, out.mean.shape[1], n_samples))
    return out.samples[ok]


def _gaussian_paths(
    panel: Panel, done: np.ndarray, out: ModelOutput, ok: np.ndarray, n_samples: int
) -> np.ndarray:
    """Sample paths for nodes fitted by a fallback model: Gaussian with its mean and sd.

    The sd is read off the fallback's 80% interval, ``(hi - lo) / (2 z_0.9)`` (0 if undefined);
    paths are independent across horizons, seeded by the node id.
    """
    mean = out.mean[ok]
    sd = np.nan_to_num((out.hi[80][ok] - out.lo[80][ok]) / (2 * NormalDist().inv_cdf(0.9)))
    paths = np.empty((len(done), mean.shape[1], n_samples))
    for j, i in enumerate(done):
        rng = np.random.default_rng(zlib.crc32(str(panel.ids[i]).encode()))
        paths[j] = mean[j][:, None] + sd[j][:, None] * rng.standard_normal(
            (mean.shape[1], n_samples)
        )
    return paths


def _raise_unfitted(panel: Panel, chain: list, todo: np.ndarray, reasons: dict[int, str]) -> None:
    names = [label for label, _ in chain]
    examples = [f"{panel.ids[i]} ({reasons.get(int(i), '?')})" for i in todo]
    hint = "Pass a fallback model, e.g. fallback=Naive()." if len(chain) == 1 else (
        "Give them more history or drop them.")  # fmt: skip
    raise HTSError(
        f"{len(todo)} node(s) could not be forecast by any of {names}: "
        f"{format_examples(examples)}. {hint}"
    )
