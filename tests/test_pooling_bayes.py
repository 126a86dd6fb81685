"""Tests of ``pooling.fit(engine="pymc")``: posterior vs REML on a small simulated data set,
seeded reproducibility, the REML result's shape, diagnostics and their warning, errors.

Few draws on one small model keep this under a minute; the full-draw Gelman & Hill checks on the
Minnesota radon data are in ``benchmarks/bayes_radon.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from htsforecast import pooling
from htsforecast.errors import DataError

pytest.importorskip("pymc")
az = pytest.importorskip("arviz")

from htsforecast._pooling_bayes import (  # noqa: E402 - after the importorskip
    ConvergenceWarning,
    Diagnostics,
    _build_model,
    _hdi,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:PyTensor could not link to a BLAS"),
    pytest.mark.filterwarnings("ignore::htsforecast._pooling_bayes.ConvergenceWarning"),
]

FAST = {"draws": 300, "tune": 300, "chains": 2, "seed": 11, "sampler_kwargs": {"cores": 1}}


def _toy(seed: int = 0, n_groups: int = 10) -> pd.DataFrame:
    """Grouped regression, true intercept 1, slope -0.7, group sd 0.5, residual sd 0.8."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 30, n_groups)
    g = np.repeat([f"g{j:02d}" for j in range(n_groups)], sizes)
    a = rng.normal(1.0, 0.5, n_groups)
    x = rng.integers(0, 2, len(g)).astype(float)
    y = np.repeat(a, sizes) - 0.7 * x + rng.normal(0, 0.8, len(g))
    return pd.DataFrame({"y": y, "x": x, "g": g})


@pytest.fixture(scope="module")
def toy() -> pd.DataFrame:
    return _toy()


@pytest.fixture(scope="module")
def bayes(toy):
    return pooling.fit(toy, "y ~ x", group="g", how="partial", engine="pymc", **FAST)


def test_posterior_close_to_reml(toy, bayes):
    """Posterior means agree with REML within a few posterior sds / Monte Carlo error; the group
    intercepts too (both are shrinkage estimates of the same model)."""
    reml = pooling.fit(toy, "y ~ x", group="g", how="partial")
    s, r = bayes.summary, reml.summary
    for key in ("intercept", "x", "residual_sd"):
        assert s[key] == pytest.approx(r[key], abs=0.5 * s[f"{key}_se"] + 0.02), key
    # the posterior mean of a scale is above the REML mode; still close with 10 groups
    assert r["group_sd"] - 0.15 < s["group_sd"] < r["group_sd"] + 0.25
    np.testing.assert_allclose(bayes.groups["intercept"], reml.groups["intercept"], atol=0.12)
    assert (np.abs(bayes.groups["intercept"] - reml.groups["intercept"]) < 0.05).mean() > 0.5


def test_same_shape_as_reml_plus_intervals(toy, bayes):
    reml = pooling.fit(toy, "y ~ x", group="g", how="partial")
    assert set(reml.summary) <= set(bayes.summary)
    assert set(reml.groups.columns) <= set(bayes.groups.columns)
    assert list(bayes.groups["g"]) == list(reml.groups["g"])
    g = bayes.groups
    assert (
        (g["intercept_hdi_lo"] < g["intercept"]) & (g["intercept"] < g["intercept_hdi_hi"])
    ).all()
    s = bayes.summary
    for key in ("intercept", "x", "group_sd", "residual_sd"):
        assert s[f"{key}_hdi_lo"] < s[key] < s[f"{key}_hdi_hi"], key
    assert ((g["shrinkage"] > 0) & (g["shrinkage"] < 1)).all()
    # smaller groups are shrunk more (rank correlation with size is negative)
    assert g["n"].rank().corr(g["shrinkage"].rank()) < -0.5
    assert isinstance(bayes.posterior, az.InferenceData)
    assert bayes.posterior.posterior["a"].shape == (2, 300, 10)
    # predict() works off the posterior means
    np.testing.assert_allclose(
        bayes.predict(toy.iloc[:3]),
        bayes.groups.set_index("g").loc[toy["g"].iloc[:3], "intercept"].to_numpy()
        + s["x"] * toy["x"].iloc[:3].to_numpy(),
    )


def test_summary_matches_the_draws(bayes):
    """The summary is the posterior mean / sd / median / HDI of the draws in .posterior (ArviZ)."""
    post = bayes.posterior.posterior
    sd = post["group_sd"].to_numpy().ravel()
    assert bayes.summary["group_sd"] == pytest.approx(sd.mean(), rel=1e-12)
    assert bayes.summary["group_sd_se"] == pytest.approx(sd.std(ddof=1), rel=1e-12)
    assert bayes.summary["group_sd_median"] == pytest.approx(np.median(sd), rel=1e-12)
    assert bayes.summary["group_sd_median"] != bayes.summary["group_sd"]  # a skewed posterior
    ref = az.hdi(bayes.posterior, var_names=["group_sd"], hdi_prob=0.94)["group_sd"].to_numpy()
    assert [bayes.summary["group_sd_hdi_lo"], bayes.summary["group_sd_hdi_hi"]] == pytest.approx(
        ref, rel=1e-12
    )


def test_seeded_fit_is_reproducible(toy, bayes):
    again = pooling.fit(toy, "y ~ x", group="g", how="partial", engine="pymc", **FAST)
    assert again.summary == bayes.summary
    pd.testing.assert_frame_equal(again.groups, bayes.groups)


def test_diagnostics_present(bayes):
    d = bayes.diagnostics
    assert {"intercept", "x", "group_sd", "residual_sd", "intercept[g00]"} <= set(d.table.index)
    assert list(d.table.columns) == ["r_hat", "ess_bulk", "ess_tail"]
    ref = az.rhat(bayes.posterior, var_names=["group_sd"])["group_sd"].item()
    assert d.table.loc["group_sd", "r_hat"] == pytest.approx(ref, rel=1e-12)
    assert d.divergences == int(bayes.posterior.sample_stats["diverging"].sum())
    assert d.max_r_hat < 1.1 and d.min_ess_bulk > 50


def test_warning_names_bad_parameters(toy):
    """Twenty draws per chain cannot give a bulk ESS of 100 per chain: the warning says so and
    names parameters."""
    with pytest.warns(ConvergenceWarning, match=r"bulk ESS < 200 for [\w\[\]]+ \("):
        pooling.fit(
            toy, "y ~ x", group="g", engine="pymc", draws=20, tune=20, chains=2, seed=1,
            sampler_kwargs={"cores": 1},
        )  # fmt: skip


def test_diagnostics_problems_by_hand():
    table = pd.DataFrame(
        {"r_hat": [1.0, 1.05], "ess_bulk": [900.0, 150.0], "ess_tail": [800.0, 100.0]},
        index=["intercept", "group_sd"],
    )
    d = Diagnostics(table, divergences=3, draws=500, chains=4)
    assert d.problems == [
        "3 divergent transition(s)",
        "R-hat > 1.01 for group_sd (1.05)",
        "bulk ESS < 400 for group_sd (150)",
    ]
    assert not d.ok and d.max_r_hat == 1.05 and d.min_ess_bulk == 150
    good = Diagnostics(table.iloc[:1], divergences=0, draws=500, chains=4)
    assert good.ok and good.problems == []


def test_hdi_matches_arviz():
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, size=(4000, 3))
    lo, hi = _hdi(x, 0.9)
    for j in range(3):
        np.testing.assert_allclose([lo[j], hi[j]], az.hdi(x[:, j], hdi_prob=0.9), rtol=1e-12)


def test_centered_and_non_centered_models(toy):
    from htsforecast.pooling import _design

    d = _design(toy, "y ~ x", "g", None)
    free = {v.name for v in _build_model(d, "partial", False, centered=True).free_RVs}
    assert "a" in free and "z" not in free
    free = {v.name for v in _build_model(d, "partial", False, centered=False).free_RVs}
    assert "z" in free and "a" not in free
    slopes = _build_model(d, "partial", True, centered=False)
    assert {"group_sd", "slope_sd", "corr", "a", "slope"} <= set(slopes.named_vars)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"engine": "stan"}, r"engine must be 'reml' or 'pymc'; got 'stan'"),
        ({"draws": 100}, r"option\(s\) \['draws'\] apply to engine='pymc' only"),
        ({"engine": "pymc", "n_draws": 5}, r"unknown option\(s\) \['n_draws'\]"),
        ({"engine": "pymc", "draws": 0}, r"draws must be an integer >= 1, got 0"),
        ({"engine": "pymc", "hdi_prob": 1.5}, r"hdi_prob must lie strictly between 0 and 1"),
    ],
)
def test_errors(toy, kwargs, match):
    with pytest.raises(DataError, match=match):
        pooling.fit(toy, "y ~ x", group="g", **kwargs)


def test_varying_slopes_posterior_matches_quadrature():
    """Gelman & Hill's correlated varying-slope model: PyMC's posterior means of the sds and the
    correlation agree with the marginal posterior computed without MCMC (restricted likelihood
    x the same priors on a grid), within Monte Carlo error (4 MC sds) plus the grid's step."""
    from test_pooling_quadrature import toy_slopes

    from htsforecast._pooling_quadrature import Counties, marginals

    df = toy_slopes()
    fit = pooling.fit(df, "y ~ x", group="g", how="partial", varying_slopes=True,
                      engine="pymc", **FAST)  # fmt: skip
    grid = {"group_sd": np.linspace(0.05, 1.3, 26), "slope_sd": np.linspace(0.005, 1.6, 33),
            "corr": np.linspace(-0.98, 0.98, 25), "residual_sd": np.linspace(0.55, 0.85, 9)}  # fmt: skip
    ref = marginals(Counties(df["y"], df["x"], df["g"]), grid)
    ref = ref[ref["prior"] == "pymc priors"].set_index("parameter")["mean"]
    for k, ax in grid.items():
        mc_sd = fit.summary[f"{k}_se"] / np.sqrt(fit.diagnostics.table.loc[k, "ess_bulk"])
        assert fit.summary[k] == pytest.approx(ref[k], abs=4 * mc_sd + np.diff(ax)[0]), k
    assert fit.diagnostics.divergences == 0  # non-centred
