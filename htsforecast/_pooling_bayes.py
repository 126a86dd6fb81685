"""The PyMC engine of :func:`htsforecast.pooling.fit` (``engine="pymc"``): posteriors, not REML.

The models are the PyMC multilevel-modelling primer's three radon models (Fonnesbeck), written for
any ``response ~ x1 + ...`` formula and any grouping column:

* ``how="pooled"``: ``y_i ~ N(mu + x_i b, sigma^2)`` (one intercept, per parent with ``nested_in``);
* ``how="unpooled"``: ``y_i ~ N(a_j[i] + x_i b, sigma^2)``, independent weakly informative priors on
  each ``a_j`` (with ``varying_slopes``, each group's own slope too);
* ``how="partial"``: ``a_j ~ N(mu_parent(j), group_sd^2)``; with ``varying_slopes`` the pair
  ``(a_j, b_j) ~ MVN((mu, b), Sigma)`` with an LKJ(eta=1) prior on the correlation.

Non-centred by default (``a_j = mu + group_sd * z_j``, ``z_j ~ N(0, 1)``; with varying slopes
``(a_j, b_j) = (mu, b) + L z_j`` with ``L`` the Cholesky factor of ``Sigma``), which avoids the
funnel that makes the centred model diverge when the group sd is poorly identified (Betancourt &
Girolami 2015; Wiecki, "Why hierarchical models are awesome, tricky, and Bayesian").

Priors are weakly informative and scaled by the data, as rstanarm's defaults: with ``s_y`` the sd
of the response and ``s_x`` of each predictor, intercepts ``N(mean(y), (2.5 s_y)^2)``, slopes
``N(0, (2.5 s_y / s_x)^2)``, residual sd ``Exponential(1 / s_y)``, group sds ``HalfNormal(2 s_y)``.

The result is a :class:`BayesPoolingResult`: the REML result's ``summary`` and ``groups`` with
posterior means (``<name>``), posterior sds (``<name>_se``) and highest-density intervals
(``<name>_hdi_lo``, ``<name>_hdi_hi``), plus ``.posterior`` (ArviZ ``InferenceData``) and
``.diagnostics`` (R-hat, bulk/tail ESS, divergences). ``summary`` also has posterior medians
(``<name>_median``).

Posterior means are not REML estimates. REML is the joint mode of the variance parameters'
posterior under flat priors (fixed effects integrated out); a poorly identified scale has a
skewed marginal posterior whose mean lies below that mode. On Gelman & Hill's Minnesota
varying-slope model the slope sd's REML estimate is 0.34 while its marginal posterior (computed by
quadrature of the restricted likelihood, flat or these priors alike) has mean 0.27, median 0.28
and mode 0.32 (``benchmarks/bayes_radon.py --quadrature``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from htsforecast.errors import DataError
from htsforecast.pooling import PoolingResult, _Design, _group_means, _label_groups

__all__ = [
    "BayesPoolingResult",
    "ConvergenceWarning",
    "Diagnostics",
    "check_options",
    "fit_pymc",
    "fit_result",
]

#: Split R-hat above this, or bulk ESS below 100 per chain, is reported (Vehtari et al. 2021).
RHAT_MAX = 1.01
ESS_PER_CHAIN = 100
#: Model variables reported (those present in the model at hand).
_PARAMS = ("intercept", "beta", "group_sd", "slope_sd", "corr", "residual_sd", "a", "slope")


class ConvergenceWarning(UserWarning):
    """The sampler's diagnostics are bad: divergences, R-hat > 1.01 or too few effective draws."""


@dataclass(frozen=True)
class Diagnostics:
    """MCMC diagnostics of a PyMC fit.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per scalar parameter (``intercept``, predictors, ``group_sd``, ``residual_sd``,
        ``slope_sd``, ``corr``, then ``intercept[<group>]`` and ``<predictor>[<group>]``):
        ``r_hat`` (rank-normalised split R-hat), ``ess_bulk``, ``ess_tail``.
    divergences : int
        Divergent transitions after tuning, over all chains.
    draws, chains : int
        Posterior draws per chain and number of chains.
    """

    table: pd.DataFrame
    divergences: int
    draws: int
    chains: int

    @property
    def max_r_hat(self) -> float:
        """Worst (largest) R-hat over all parameters."""
        return float(self.table["r_hat"].max())

    @property
    def min_ess_bulk(self) -> float:
        """Smallest bulk effective sample size over all parameters."""
        return float(self.table["ess_bulk"].min())

    @property
    def problems(self) -> list[str]:
        """Human-readable list of what is bad (empty when all is well)."""
        out = []
        if self.divergences:
            out.append(f"{self.divergences} divergent transition(s)")
        for col, bad, rule in (
            ("r_hat", self.table["r_hat"] > RHAT_MAX, f"R-hat > {RHAT_MAX}"),
            ("ess_bulk", self.table["ess_bulk"] < ESS_PER_CHAIN * self.chains,
             f"bulk ESS < {ESS_PER_CHAIN * self.chains}"),
        ):  # fmt: skip
            worst = self.table.loc[bad, col].sort_values(ascending=col == "ess_bulk")
            if len(worst):
                shown = ", ".join(f"{k} ({v:.3g})" for k, v in worst.iloc[:5].items())
                more = f" and {len(worst) - 5} more" if len(worst) > 5 else ""
                out.append(f"{rule} for {shown}{more}")
        return out

    @property
    def ok(self) -> bool:
        """No divergences, every R-hat <= 1.01 and every bulk ESS >= 100 per chain."""
        return not self.problems


@dataclass(frozen=True)
class BayesPoolingResult(PoolingResult):
    """A :class:`~htsforecast.pooling.PoolingResult` fitted by MCMC (``engine="pymc"``).

    ``summary`` and ``groups`` have the REML result's keys and columns, holding posterior means,
    with posterior sds in the ``*_se`` entries, plus ``*_hdi_lo`` / ``*_hdi_hi`` (highest-density
    interval of probability ``summary["hdi_prob"]``) for every estimate, and ``_se``/HDI entries
    for ``group_sd``, ``residual_sd`` (and ``slope_sd``, ``corr``) too. ``shrinkage`` is the
    posterior variance of the group's deviation from its group mean over the posterior mean of
    ``group_sd^2`` (the REML pooling factor with the conditional variance replaced by the
    posterior one). ``unpooled`` (varying intercepts) is ``mean(y - x b)`` at the posterior mean
    of ``b``.

    Attributes
    ----------
    posterior : arviz.InferenceData
        The draws (``posterior``, ``sample_stats``, ``observed_data``).
    diagnostics : Diagnostics
        R-hat, ESS and divergences.
    centered : bool
        Parameterisation of the group effects.
    """

    posterior: Any = field(repr=False)
    diagnostics: Diagnostics = field(repr=False)
    centered: bool = False


@contextmanager
def _quiet_pymc() -> Iterator[None]:
    """Silence PyMC's own progress logging (our diagnostics warning replaces its messages)."""
    loggers = [logging.getLogger(n) for n in ("pymc", "pymc.sampling.mcmc", "pytensor")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def import_pymc() -> tuple[Any, Any]:
    """``(pymc, arviz)``, or a clear error naming the extra to install."""
    try:
        import arviz as az
        import pymc as pm
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"engine='pymc' needs PyMC and ArviZ ({exc}). Install them with "
            '`pip install "htsforecast[bayes]"`.'
        ) from exc
    return pm, az


_BAYES_OPTIONS = ("draws", "tune", "chains", "seed", "centered", "hdi_prob", "sampler_kwargs")


def check_options(engine: str, bayes: dict[str, Any]) -> None:
    if engine not in ("reml", "pymc"):
        raise DataError(f"engine must be 'reml' or 'pymc'; got {engine!r}.")
    unknown = sorted(set(bayes) - set(_BAYES_OPTIONS))
    if unknown:
        raise DataError(
            f"unknown option(s) {unknown} for pooling.fit; engine='pymc' takes "
            f"{', '.join(_BAYES_OPTIONS)}."
        )
    if bayes and engine != "pymc":
        raise DataError(
            f"option(s) {sorted(bayes)} apply to engine='pymc' only; got engine={engine!r}."
        )


def fit_result(d, how, formula, group, nested_in, varying_slopes, opts) -> BayesPoolingResult:
    """``engine="pymc"``: sample and wrap in a BayesPoolingResult."""
    draws = opts.get("draws", 1000)
    summary, groups, idata, diag = fit_pymc(
        d,
        how,
        varying_slopes,
        draws=draws,
        tune=opts.get("tune", draws),
        chains=opts.get("chains", 4),
        seed=opts.get("seed"),
        centered=bool(opts.get("centered", False)),
        hdi_prob=float(opts.get("hdi_prob", 0.94)),
        sampler_kwargs=opts.get("sampler_kwargs"),
    )
    summary = {**summary, "n_obs": len(d.y), "n_groups": len(d.labels)}
    groups = _label_groups(groups, d, group, nested_in)
    args = (how, formula, group, nested_in, varying_slopes, summary, groups)
    centered = bool(opts.get("centered", False))
    return BayesPoolingResult(*args, posterior=idata, diagnostics=diag, centered=centered)


# --------------------------------------------------------------------------------------------
# model


def _priors(d: _Design) -> dict[str, Any]:
    s_y = float(np.std(d.y)) or 1.0
    s_x = np.std(d.x, axis=0) if d.x.shape[1] else np.zeros(0)
    return {"mean_y": float(np.mean(d.y)), "s_y": s_y, "s_b": 2.5 * s_y / np.where(s_x > 0, s_x, 1)}


def _build_model(d: _Design, how: str, varying_slopes: bool, centered: bool) -> Any:
    """The PyMC model: named variables ``intercept`` (per parent), ``beta`` (common or mean
    slopes), ``a`` (group intercepts), ``slope`` (group slopes, varying slopes only),
    ``group_sd``, ``slope_sd``, ``corr`` (partial pooling) and ``residual_sd``."""
    pm, _ = import_pymc()
    pr = _priors(d)
    coords = {"parent": d.parents, "group": d.labels.tolist(), "predictor": d.predictors}
    with pm.Model(coords=coords) as model:
        center = pm.Normal("intercept", pr["mean_y"], 2.5 * pr["s_y"], dims="parent")
        center = center[d.parent_codes]
        if varying_slopes and how != "pooled":
            a, slope = _varying_slopes(pm, d, how, centered, pr, center)
            mean = a[d.codes] + slope[d.codes] * d.x[:, 0]
        else:
            a = _varying_intercepts(pm, d, how, centered, pr, center)
            mean = a[d.codes]
            if d.x.shape[1]:
                beta = pm.Normal("beta", 0.0, pr["s_b"], dims="predictor")
                mean = mean + pm.math.dot(d.x, beta)
        sigma = pm.Exponential("residual_sd", 1.0 / pr["s_y"])
        pm.Normal("y", mean, sigma, observed=d.y)
    return model


def _varying_intercepts(pm, d, how, centered, pr, center) -> Any:
    """Group intercepts ``a`` (J,) for the pooled, unpooled and varying-intercept models."""
    if how == "pooled":
        return pm.Deterministic("a", center, dims="group")
    if how == "unpooled":
        return pm.Normal("a", pr["mean_y"], 2.5 * pr["s_y"], dims="group")
    sd = pm.HalfNormal("group_sd", 2 * pr["s_y"])
    if centered:
        return pm.Normal("a", center, sd, dims="group")
    z = pm.Normal("z", 0.0, 1.0, dims="group")
    return pm.Deterministic("a", center + sd * z, dims="group")


def _varying_slopes(pm, d, how, centered, pr, center) -> tuple[Any, Any]:
    """Group intercepts and slopes ``(a, slope)``, each (J,), for the varying-slope models."""
    if how == "unpooled":
        a = pm.Normal("a", pr["mean_y"], 2.5 * pr["s_y"], dims="group")
        return a, pm.Normal("slope", 0.0, pr["s_b"][0], dims="group")
    beta = pm.Normal("beta", 0.0, pr["s_b"], dims="predictor")
    scale = 2 * pr["s_y"] * np.array([1.0, 1.0 / max(float(np.std(d.x[:, 0])), 1e-12)])
    chol, corr, sds = pm.LKJCholeskyCov(
        "chol", n=2, eta=1.0, sd_dist=pm.HalfNormal.dist(scale, shape=2), compute_corr=True
    )
    pm.Deterministic("group_sd", sds[0])
    pm.Deterministic("slope_sd", sds[1])
    pm.Deterministic("corr", corr[0, 1])
    means = pm.math.stack([center, beta[0] + 0 * center], axis=1)  # (J, 2)
    if centered:
        ab = pm.MvNormal("ab", mu=means, chol=chol, shape=(len(d.labels), 2))
    else:
        z = pm.Normal("z", 0.0, 1.0, shape=(len(d.labels), 2))
        ab = means + pm.math.dot(z, chol.T)
    a = pm.Deterministic("a", ab[:, 0], dims="group")
    return a, pm.Deterministic("slope", ab[:, 1], dims="group")


# --------------------------------------------------------------------------------------------
# sampling -> summaries


def fit_pymc(
    d: _Design,
    how: str,
    varying_slopes: bool,
    *,
    draws: int,
    tune: int,
    chains: int,
    seed: int | None,
    centered: bool,
    hdi_prob: float,
    sampler_kwargs: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, Any, Diagnostics]:
    """Sample the model; return ``summary, groups, idata, diagnostics`` (groups unlabelled)."""
    pm, _ = import_pymc()
    _check_sampler_args(draws, tune, chains, hdi_prob)
    model = _build_model(d, how, varying_slopes, centered)
    kwargs = {"target_accept": 0.9, "progressbar": False, **(sampler_kwargs or {})}
    with model, _quiet_pymc(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            random_seed=seed,
            compute_convergence_checks=False,
            **kwargs,
        )
    post = _draws(idata)
    summary = _summary(d, how, varying_slopes, post, hdi_prob)
    groups = _groups(d, how, varying_slopes, post, hdi_prob)
    diag = _diagnostics(idata, d, how, varying_slopes, draws, chains)
    if diag.problems:
        warnings.warn(
            "PyMC fit has bad diagnostics: " + "; ".join(diag.problems) + ". Hint: more draws "
            "and tune, sampler_kwargs={'target_accept': 0.95}, or the non-centred model "
            "(centered=False); inspect result.diagnostics.table.",
            ConvergenceWarning,
            stacklevel=4,  # warn -> fit_pymc -> fit_result -> pooling.fit -> caller
        )
    return summary, groups, idata, diag


def _check_sampler_args(draws: int, tune: int, chains: int, hdi_prob: float) -> None:
    for name, v, low in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise DataError(f"{name} must be an integer >= {low}, got {v!r}.")
    if not 0 < hdi_prob < 1:
        raise DataError(f"hdi_prob must lie strictly between 0 and 1, got {hdi_prob!r}.")


def _draws(idata: Any) -> dict[str, np.ndarray]:
    """Posterior draws flattened over chains: name -> (n_draws, ...) arrays."""
    names = [n for n in _PARAMS if n in idata.posterior]
    out = {}
    for n in names:
        v = idata.posterior[n].to_numpy()
        out[n] = v.reshape(v.shape[0] * v.shape[1], *v.shape[2:])
    return out


def _hdi(x: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Narrowest interval holding ``prob`` of the draws along axis 0 (ArviZ's algorithm)."""
    s = np.sort(x, axis=0)
    n = s.shape[0]
    k = int(np.floor(prob * n))
    if k >= n or n < 2:
        return s[0], s[-1]
    width = s[k:] - s[: n - k]
    i = np.argmin(width, axis=0)
    idx = np.arange(np.prod(s.shape[1:], dtype=int)).reshape(s.shape[1:])
    flat = s.reshape(n, -1)
    return flat[i.ravel(), idx.ravel()].reshape(i.shape), flat[
        (i + k).ravel(), idx.ravel()
    ].reshape(i.shape)


def _entries(name: str, x: np.ndarray, prob: float) -> dict[str, Any]:
    """``name``: mean, ``name_se``: sd, ``name_median``, ``name_hdi_lo``/``_hi`` of draws (n,)."""
    lo, hi = _hdi(x[:, None], prob)
    return {
        name: float(np.mean(x)),
        f"{name}_se": float(np.std(x, ddof=1)),
        f"{name}_median": float(np.median(x)),
        f"{name}_hdi_lo": float(lo[0]),
        f"{name}_hdi_hi": float(hi[0]),
    }


def _summary(
    d: _Design, how: str, varying_slopes: bool, post: dict[str, np.ndarray], prob: float
) -> dict[str, Any]:
    mus = post["intercept"]
    if how == "unpooled":  # the unweighted mean of the group intercepts, per parent
        mus = np.stack(
            [post["a"][:, d.parent_codes == k].mean(axis=1) for k in range(len(d.parents))],
            axis=1,
        )
    out: dict[str, Any] = {}
    if d.parents == ["(all)"]:
        out |= _entries("intercept", mus[:, 0], prob)
    else:
        parts = [_entries("i", mus[:, k], prob) for k in range(len(d.parents))]
        for key, suffix in (("intercepts", ""), ("intercept_ses", "_se")):
            out[key] = {p: e[f"i{suffix}"] for p, e in zip(d.parents, parts)}
        for suffix in ("_hdi_lo", "_hdi_hi"):
            out[f"intercepts{suffix}"] = {p: e[f"i{suffix}"] for p, e in zip(d.parents, parts)}
    for j, p in enumerate(d.predictors):
        b = post["beta"][:, j]
        if varying_slopes and how == "unpooled":
            b = post["slope"].mean(axis=1)
        out |= _entries(p, b, prob)
    if how == "partial":
        out |= _entries("group_sd", post["group_sd"], prob)
    else:
        out["group_sd"] = 0.0 if how == "pooled" else float("inf")
    out |= _entries("residual_sd", post["residual_sd"], prob)
    if varying_slopes and how == "partial":
        out |= _entries("slope_sd", post["slope_sd"], prob) | _entries("corr", post["corr"], prob)
    elif varying_slopes and how == "unpooled":
        out |= {"slope_sd": float("inf"), "corr": float("nan")}
    return out | {"hdi_prob": prob, "engine": "pymc"}


def _columns(name: str, x: np.ndarray, prob: float) -> dict[str, np.ndarray]:
    lo, hi = _hdi(x, prob)
    return {
        name: x.mean(axis=0),
        f"{name}_se": x.std(axis=0, ddof=1),
        f"{name}_hdi_lo": lo,
        f"{name}_hdi_hi": hi,
    }


def _groups(
    d: _Design, how: str, varying_slopes: bool, post: dict[str, np.ndarray], prob: float
) -> pd.DataFrame:
    a, mu = post["a"], post["intercept"][:, d.parent_codes]
    cols: dict[str, Any] = _columns("intercept", a, prob)
    if how == "partial":
        var_sd = np.mean(post["group_sd"] ** 2)
        cols["shrinkage"] = np.clip(np.var(a - mu, axis=0, ddof=1) / var_sd, 0.0, 1.0)
        cols["group_mean"] = mu.mean(axis=0)
    else:
        cols["shrinkage"] = np.full(len(d.labels), 1.0 if how == "pooled" else 0.0)
        cols["group_mean"] = mu.mean(axis=0) if how == "pooled" else np.nan
    if how == "partial" and not varying_slopes:
        b = post["beta"].mean(axis=0) if "beta" in post else np.zeros(0)
        cols["unpooled"] = _group_means(d, d.y - d.x @ b)
    if varying_slopes and how != "pooled":
        p = d.predictors[0]
        cols |= _columns(p, post["slope"], prob)
        if how == "partial":
            dev = post["slope"] - post["beta"][:, :1]
            ratio = np.var(dev, axis=0, ddof=1) / np.mean(post["slope_sd"] ** 2)
            cols[f"{p}_shrinkage"] = np.clip(ratio, 0.0, 1.0)
        else:
            cols[f"{p}_shrinkage"] = np.zeros(len(d.labels))
    return pd.DataFrame(cols)


def _diagnostics(
    idata: Any, d: _Design, how: str, varying_slopes: bool, draws: int, chains: int
) -> Diagnostics:
    _, az = import_pymc()
    names = [n for n in _PARAMS if n in idata.posterior and not (n == "a" and how == "pooled")]
    post = idata.posterior[names]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns on too few draws; our table says so
        stats = {
            "r_hat": az.rhat(post),
            "ess_bulk": az.ess(post, method="bulk"),
            "ess_tail": az.ess(post, method="tail"),
        }
    rows: dict[str, dict[str, float]] = {}
    labels = {
        "beta": d.predictors,
        "intercept": ["intercept"] if d.parents == ["(all)"] else
        [f"intercept[{p}]" for p in d.parents],
        "a": [f"intercept[{g}]" for g in d.labels],
        "slope": [f"{d.predictors[0]}[{g}]" for g in d.labels] if varying_slopes else [],
    }  # fmt: skip
    for n in names:
        for col, ds in stats.items():
            vals = np.atleast_1d(ds[n].to_numpy()).astype(float)
            for lab, v in zip(labels.get(n, [n]), vals):
                rows.setdefault(lab, {})[col] = float(v)
    table = pd.DataFrame.from_dict(rows, orient="index")[["r_hat", "ess_bulk", "ess_tail"]]
    divergences = int(idata.sample_stats["diverging"].to_numpy().sum())
    return Diagnostics(table, divergences, int(draws), int(chains))
