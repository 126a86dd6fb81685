"""Tests of htsforecast.pooling: Gelman & Hill's published radon numbers, the statsmodels oracle,
closed forms for pooled/unpooled fits, the shrinkage property, and the documented errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from htsforecast import pooling
from htsforecast.datasets import load_radon_survey
from htsforecast.errors import DataError


@pytest.fixture(scope="module")
def mn() -> pd.DataFrame:
    """Gelman & Hill's 919 Minnesota homes (the MN state survey)."""
    survey = load_radon_survey()
    return survey[survey["survey"] == "MN"].reset_index(drop=True)


@pytest.fixture(scope="module")
def partial(mn):
    return pooling.fit(mn, "log_radon ~ floor", group="county", how="partial")


@pytest.fixture(scope="module")
def partial_slopes(mn):
    return pooling.fit(mn, "log_radon ~ floor", group="county", how="partial", varying_slopes=True)


def _toy(seed: int = 0, n_groups: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 25, n_groups)
    g = np.repeat([f"g{j:02d}" for j in range(n_groups)], sizes)
    a = rng.normal(1.0, 0.5, n_groups)
    x = rng.integers(0, 2, len(g)).astype(float)
    y = np.repeat(a, sizes) - 0.7 * x + rng.normal(0, 0.8, len(g))
    return pd.DataFrame({"y": y, "x": x, "g": g})


# ---------------------------------------------------------------------- Gelman & Hill (2007)


def test_gelman_hill_varying_intercept(partial):
    """ch. 12: lmer(y ~ x + (1 | county)) on the 919 MN homes."""
    s = partial.summary
    book = {"intercept": 1.46, "intercept_se": 0.05, "floor": -0.69, "floor_se": 0.07}
    book |= {"group_sd": 0.33, "residual_sd": 0.76}
    for key, value in book.items():
        assert s[key] == pytest.approx(value, abs=0.01), key
    assert (s["n_obs"], s["n_groups"]) == (919, 85)


def test_gelman_hill_varying_slopes(partial_slopes):
    """ch. 13: lmer(y ~ x + (1 + x | county))."""
    s = partial_slopes.summary
    book = {"intercept": 1.46, "floor": -0.68, "group_sd": 0.35, "slope_sd": 0.34}
    book |= {"corr": -0.34, "residual_sd": 0.75}
    for key, value in book.items():
        assert s[key] == pytest.approx(value, abs=0.02), key


def test_complete_and_no_pooling_match_least_squares(mn):
    """Complete pooling = lm(y ~ x); no pooling = lm(y ~ x + factor(county) - 1) (G&H 12.2)."""
    y, x = mn["log_radon"].to_numpy(), mn["floor"].to_numpy(float)
    X = np.column_stack([np.ones_like(x), x])
    ref = np.linalg.lstsq(X, y, rcond=None)[0]
    pooled = pooling.fit(mn, how="pooled").summary
    assert [pooled["intercept"], pooled["floor"]] == pytest.approx(ref, abs=1e-10)
    assert pooled["residual_sd"] == pytest.approx(np.std(y - X @ ref, ddof=2), rel=1e-10)
    assert (round(pooled["intercept"], 2), round(pooled["floor"], 2)) == (1.33, -0.61)

    dummies = pd.get_dummies(mn["county"]).sort_index(axis=1).to_numpy(float)
    coef = np.linalg.lstsq(np.column_stack([x, dummies]), y, rcond=None)[0]
    unp = pooling.fit(mn, how="unpooled")
    assert unp.summary["floor"] == pytest.approx(coef[0], abs=1e-10)
    assert round(unp.summary["floor"], 2) == -0.72
    np.testing.assert_allclose(unp.groups["intercept"], coef[1:], atol=1e-10)


# ---------------------------------------------------------------------- oracle and identities


def test_reml_matches_statsmodels_mixedlm(mn, partial):
    from statsmodels.regression.mixed_linear_model import MixedLM

    X = np.column_stack([np.ones(len(mn)), mn["floor"].to_numpy(float)])
    ref = MixedLM(mn["log_radon"].to_numpy(), X, groups=mn["county"].to_numpy()).fit(reml=True)
    s = partial.summary
    assert [s["intercept"], s["floor"]] == pytest.approx(np.asarray(ref.fe_params), abs=1e-5)
    assert s["group_sd"] == pytest.approx(float(np.sqrt(np.asarray(ref.cov_re)[0, 0])), abs=1e-4)
    assert s["residual_sd"] == pytest.approx(float(np.sqrt(ref.scale)), abs=1e-5)
    blup = pd.Series({k: float(v.iloc[0]) for k, v in ref.random_effects.items()})
    cvar = pd.Series({k: float(v.iloc[0, 0]) for k, v in ref.random_effects_cov.items()})
    g = partial.groups
    np.testing.assert_allclose(g["intercept"] - s["intercept"], blup[g["county"]], atol=1e-4)
    np.testing.assert_allclose(g["intercept_se"] ** 2, cvar[g["county"]], rtol=1e-3)


def test_partial_lies_between_unpooled_and_group_mean(mn, partial):
    """Every county's partial-pooling estimate lies between its own estimate and the group mean."""
    g = partial.groups
    # the county's own intercept given the common slope, recomputed by hand
    own = (mn["log_radon"] - partial.summary["floor"] * mn["floor"]).groupby(mn["county"]).mean()
    np.testing.assert_allclose(g["unpooled"], own.loc[g["county"]].to_numpy(), atol=1e-12)
    mu = partial.summary["intercept"]
    lo, hi = np.minimum(g["unpooled"], mu), np.maximum(g["unpooled"], mu)
    assert ((g["intercept"] >= lo - 1e-12) & (g["intercept"] <= hi + 1e-12)).all()
    assert (g["shrinkage"] > 0).all() and (g["shrinkage"] < 1).all()


def test_partial_between_no_pooling_and_pooled_mean_intercept_only(mn):
    """y ~ 1: the no-pooling estimate is the county mean; partial estimates lie between it and
    the pooled (group-level) mean for every county, and more so for small counties."""
    part = pooling.fit(mn, "log_radon ~ 1", how="partial")
    unp = pooling.fit(mn, "log_radon ~ 1", how="unpooled").groups
    means = mn.groupby("county")["log_radon"].mean()
    np.testing.assert_allclose(unp["intercept"], means.loc[unp["county"]].to_numpy(), atol=1e-12)
    mu, est, own = part.summary["intercept"], part.groups["intercept"], unp["intercept"]
    assert (np.abs(est - mu) <= np.abs(own - mu) + 1e-12).all()
    assert ((est - mu) * (own - mu) >= 0).all()
    # shrinkage is Gelman & Hill's (sigma^2 / n) / (sigma^2 / n + sigma_a^2)
    s2, sa2, n = part.summary["residual_sd"] ** 2, part.summary["group_sd"] ** 2, part.groups["n"]
    np.testing.assert_allclose(part.groups["shrinkage"], (s2 / n) / (s2 / n + sa2), rtol=1e-10)


def test_varying_slopes_groups(partial_slopes):
    g = partial_slopes.groups
    assert {"intercept", "floor", "floor_se", "floor_shrinkage", "shrinkage"} <= set(g.columns)
    assert len(g) == 85 and g[["intercept", "floor"]].notna().all().all()
    # partial pooling estimates every slope, even for counties without first-floor homes
    assert g["floor"].between(-1.5, 0.0).all()
    assert ((g["shrinkage"] > 0) & (g["shrinkage"] < 1)).all()


def test_unpooled_varying_slopes_is_one_regression_per_county():
    df = _toy(3)
    df.loc[df["g"] == "g05", "x"] = 0.0  # no variation: intercept = mean, slope NaN
    df.loc[df["g"] == "g06", "x"] = 1.0  # no variation at x != 0: both NaN
    with pytest.warns(UserWarning, match=r"no variation in 'x'.*slope is NaN"):
        res = pooling.fit(df, "y ~ x", group="g", how="unpooled", varying_slopes=True)
    g = res.groups.set_index("g")
    for name, part in df.groupby("g"):
        if part["x"].nunique() == 2:
            slope, intercept = np.polyfit(part["x"], part["y"], 1)
            assert g.loc[name, "x"] == pytest.approx(slope, abs=1e-10)
            assert g.loc[name, "intercept"] == pytest.approx(intercept, abs=1e-10)
    assert np.isnan(g.loc["g05", "x"]) and g.loc["g05", "intercept"] == pytest.approx(
        df.loc[df["g"] == "g05", "y"].mean()
    )
    assert np.isnan(g.loc["g06", "x"]) and np.isnan(g.loc["g06", "intercept"])


def test_single_observation_group_is_pooled_not_dropped():
    df = _toy(1)
    df = pd.concat([df, pd.DataFrame({"y": [2.5], "x": [0.0], "g": ["lonely"]})], ignore_index=True)
    res = pooling.fit(df, "y ~ x", group="g", how="partial")
    row = res.groups.set_index("g").loc["lonely"]
    assert row["n"] == 1 and 0.5 < row["shrinkage"] < 1
    assert res.summary["intercept"] < row["intercept"] < row["unpooled"]


def test_nested_in_state_shrinks_toward_state_mean():
    df = _toy(2, n_groups=16)
    df["state"] = np.where(df["g"] < "g08", "A", "B")
    df.loc[df["state"] == "B", "y"] += 3.0
    res = pooling.fit(df, "y ~ x", group="g", how="partial", nested_in="state")
    g = res.groups
    ints = res.summary["intercepts"]
    assert set(ints) == {"A", "B"} and ints["B"] - ints["A"] == pytest.approx(3.0, abs=0.8)
    np.testing.assert_allclose(g["group_mean"], g["state"].map(ints), atol=1e-12)
    lo, hi = np.minimum(g["unpooled"], g["group_mean"]), np.maximum(g["unpooled"], g["group_mean"])
    assert ((g["intercept"] >= lo) & (g["intercept"] <= hi)).all()


def test_exceedance_and_predict(partial, mn):
    cells = pd.DataFrame({"county": ["AITKIN", "AITKIN", "NOWHERE"], "floor": [0, 1, 0]})
    mean = partial.predict(cells)
    a = partial.groups.set_index("county").loc["AITKIN", "intercept"]
    b, mu = partial.summary["floor"], partial.summary["intercept"]
    np.testing.assert_allclose(mean, [a, a + b, mu])  # unseen county -> group mean
    from scipy import stats

    p = partial.exceedance(cells, np.log(4))
    ref = stats.norm.sf(np.log(4), loc=mean, scale=partial.summary["residual_sd"])
    np.testing.assert_allclose(p, ref, rtol=1e-12)


def test_shrunk_estimates_helper(mn, partial):
    est = pooling.shrunk_estimates(mn)
    assert list(est.columns) == [
        "county", "n", "unpooled", "unpooled_se", "partial", "partial_se", "pooled",
        "group_mean", "shrinkage",
    ]  # fmt: skip
    assert len(est) == 85 and est["n"].sum() == 919
    np.testing.assert_allclose(est["partial"], partial.groups["intercept"])
    assert est["pooled"].nunique() == 1
    # small counties are shrunk more
    assert est.loc[est["n"].idxmin(), "shrinkage"] > est.loc[est["n"].idxmax(), "shrinkage"]


# ---------------------------------------------------------------------- errors


def test_error_nan_group():
    df = _toy()
    df.loc[[3, 7], "g"] = None
    with pytest.raises(
        DataError, match=r"group column 'g' has 2 missing value\(s\), at row\(s\) 3, 7"
    ):
        pooling.fit(df, "y ~ x", group="g")


def test_error_predictor_without_variance():
    df = _toy().assign(x=1.0)
    with pytest.raises(DataError, match=r"predictor 'x' has no variance \(every row is 1\)"):
        pooling.fit(df, "y ~ x", group="g", how="pooled")


def test_error_predictor_constant_within_groups_for_no_pooling():
    df = _toy()
    df["u"] = df["g"].str[1:].astype(float)  # a group-level predictor
    with pytest.raises(DataError, match=r"predictor\(s\) u are constant within every group"):
        pooling.fit(df, "y ~ x + u", group="g", how="unpooled")
    assert "u" in pooling.fit(df, "y ~ x + u", group="g", how="partial").summary


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"how": "some"}, r"how must be one of 'pooled', 'unpooled', 'partial'"),
        ({"formula": "y ~ x + q"}, r"missing column\(s\) q"),
        ({"formula": "y = x"}, r"formula must look like 'response ~ x1 \+ x2'"),
        ({"formula": "y ~ x*x"}, r"terms must be column names joined by '\+'"),
        ({"formula": "y ~ x + y", "varying_slopes": True}, r"needs exactly one predictor"),
    ],
)
def test_error_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pooling.fit(_toy(), **{"formula": "y ~ x", "group": "g", **kwargs})


def test_error_nan_or_text_response():
    df = _toy()
    df.loc[5, "y"] = np.nan
    with pytest.raises(
        DataError, match=r"column 'y' has 1 missing or infinite value\(s\), at row\(s\) 5"
    ):
        pooling.fit(df, "y ~ x", group="g")
    with pytest.raises(DataError, match=r"column 'g' must be numeric"):
        pooling.fit(_toy(), "g ~ x", group="x")


def test_error_group_under_two_parents_and_too_few_groups():
    df = _toy().assign(state="A")
    df.loc[0, "state"] = "B"
    with pytest.raises(DataError, match=r"group 'g00' of column 'g' appears under several 'state'"):
        pooling.fit(df, "y ~ x", group="g", nested_in="state")
    one = _toy().assign(g="only")
    with pytest.raises(DataError, match=r"partial pooling needs several groups"):
        pooling.fit(one, "y ~ x", group="g")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pooling.fit(one, "y ~ x", group="g", how="pooled").groups.shape[0] == 1
