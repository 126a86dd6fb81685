"""Tests of the quadrature reference for varying-slope models (``htsforecast._pooling_quadrature``):
its restricted likelihood against the dense matrix formula, its joint mode against the package's
REML fit (an independent implementation) and Gelman & Hill's published estimates, and the
posterior summaries against hand-made grids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from htsforecast import pooling
from htsforecast._pooling_quadrature import Counties, marginals, reml, restricted_loglik


def toy_slopes(seed: int = 3, n_groups: int = 30) -> pd.DataFrame:
    """Varying intercepts and slopes: means (1, -0.7), sds (0.5, 0.6), correlation -0.4,
    residual sd 0.7, binary ``x``."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(4, 25, n_groups)
    g = np.repeat([f"g{j:02d}" for j in range(n_groups)], sizes)
    cov = [[0.25, -0.4 * 0.5 * 0.6], [-0.4 * 0.5 * 0.6, 0.36]]
    ab = np.array([1.0, -0.7]) + rng.normal(size=(n_groups, 2)) @ np.linalg.cholesky(cov).T
    x = (rng.random(len(g)) < 0.4).astype(float)
    j = np.repeat(np.arange(n_groups), sizes)
    y = ab[j, 0] + ab[j, 1] * x + rng.normal(0, 0.7, len(g))
    return pd.DataFrame({"y": y, "x": x, "g": g})


def test_restricted_loglik_is_the_dense_formula():
    """-1/2 (log|V| + log|X'V^-1 X| + (y - X b)'V^-1 (y - X b)) with V = Z G Z' + s^2 I built
    densely, at a few parameter values (the Woodbury county sums must agree exactly)."""
    df = toy_slopes(n_groups=4).groupby("g").head(5)
    y, x = df["y"].to_numpy(), df["x"].to_numpy()
    g = np.unique(df["g"], return_inverse=True)[1]
    X = np.column_stack([np.ones_like(x), x])
    c = Counties(y, x, df["g"])
    for sa, sb, r, s in [(0.5, 0.6, -0.4, 0.7), (0.1, 1.3, 0.8, 0.4), (2.0, 0.05, 0.0, 1.1)]:
        G = np.array([[sa**2, r * sa * sb], [r * sa * sb, sb**2]])
        V = s**2 * np.eye(len(y))
        for k in range(g.max() + 1):
            m = g == k
            V[np.ix_(m, m)] += X[m] @ G @ X[m].T
        Vi = np.linalg.inv(V)
        b = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ y)
        e = y - X @ b
        ref = -0.5 * (np.linalg.slogdet(V)[1] + np.linalg.slogdet(X.T @ Vi @ X)[1] + e @ Vi @ e)
        assert float(restricted_loglik(c, sa, sb, r, s)) == pytest.approx(ref, rel=1e-10)


def test_joint_mode_is_the_package_reml():
    """Two implementations of REML for varying slopes (pooling.fit's and this closed form)
    agree, on simulated data and on Gelman & Hill's Minnesota radon data, where both give the
    published 0.35 / 0.34 / -0.34 / 0.75."""
    from htsforecast.datasets import load_radon_survey

    survey = load_radon_survey()
    mn = survey[survey["survey"] == "MN"]
    keys = ("group_sd", "slope_sd", "corr", "residual_sd")
    for df, cols in ((toy_slopes(), ("y", "x", "g")), (mn, ("log_radon", "floor", "county"))):
        ours = reml(Counties(*(df[k] for k in cols)))
        fit = pooling.fit(df, f"{cols[0]} ~ {cols[1]}", group=cols[2], how="partial",
                          varying_slopes=True).summary  # fmt: skip
        assert [ours[k] for k in keys] == pytest.approx([fit[k] for k in keys], abs=2e-3)
    assert [ours[k] for k in keys] == pytest.approx([0.35, 0.34, -0.34, 0.75], abs=0.005)


def test_marginals_summarise_the_grid():
    """Under flat priors the joint mode on the grid is the grid point nearest REML, and the
    marginal summaries are ordered as a distribution's must be (within the grid)."""
    c = Counties(*(toy_slopes()[k] for k in ("y", "x", "g")))
    grid = {"group_sd": np.linspace(0.05, 1.3, 14), "slope_sd": np.linspace(0.005, 1.6, 17),
            "corr": np.linspace(-0.98, 0.98, 13), "residual_sd": np.linspace(0.55, 0.85, 5)}  # fmt: skip
    tab = marginals(c, grid).set_index(["prior", "parameter"])
    est = reml(c)
    for k, ax in grid.items():
        row = tab.loc[("flat", k)]
        assert abs(row["joint mode"] - est[k]) <= np.diff(ax)[0]
        assert ax[0] <= row["mean"] <= ax[-1] and ax[0] <= row["median"] <= ax[-1]
    assert set(tab.index.get_level_values("prior")) == {"flat", "pymc priors"}
