"""Array kernel: exact interval variances against a dense computation, projections, registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from htsforecast import Hierarchy, ReconciliationError
from htsforecast.reconciliation import BottomUp, MiddleOut, MinTrace, TopDown
from htsforecast.reconciliation import _covariance as cov
from htsforecast.reconciliation._arrays import problem_of as _problem
from htsforecast.reconciliation._border import BorderFactor
from htsforecast.reconciliation._border import border_split as _border_split
from htsforecast.reconciliation._kernel import ConstraintSolver, LowRankW, mint_bottom
from htsforecast.reconciliation._methods import Fitted, Problem
from htsforecast.reconciliation._variance import (
    MinTraceVariance,
    corr_scaled,
    linear_basis,
    mint_variance,
    proportional_groups,
)

FORMULAS = ["a / b / c", "(a / b) * c", "(a / b) * (c / d)", "a * c * d"]


def random_hierarchy(rng: np.random.Generator, formula: str) -> Hierarchy:
    """A random hierarchy for ``formula``: random numbers of children per node, random gaps."""
    rows = []
    for i in range(int(rng.integers(1, 4))):
        for j in range(int(rng.integers(1, 4))):
            for c in range(int(rng.integers(1, 4))):
                for d in range(int(rng.integers(1, 3))):
                    if rng.random() < 0.85 or not rows:
                        rows.append((f"a{i}", f"a{i}b{j}", f"c{c}", f"c{c}d{d}"))
    df = pd.DataFrame(rows, columns=["a", "b", "c", "d"]).drop_duplicates()
    if formula == "a / b / c":
        df["c"] = df["b"] + df["c"]
    used = [k for k in "abcd" if k in formula]
    df = df[used].drop_duplicates()
    df["ds"] = pd.Timestamp("2020-01-01")
    df["y"] = 1.0
    hier = Hierarchy.from_formula(formula)
    hier.aggregate(df, freq="D")
    return hier


def dense_variance(S: np.ndarray, W: np.ndarray, Wh: np.ndarray) -> np.ndarray:
    """``diag(S P W_h P' S')`` with ``P = (S' W^-1 S)^-1 S' W^-1`` formed densely (the primal
    GLS form, not the constraint form the kernel uses)."""
    Winv_S = np.linalg.solve(W, S)
    P = np.linalg.solve(S.T @ Winv_S, Winv_S.T)
    SP = S @ P
    return np.diag(SP @ Wh @ SP.T)


def dense_variance_constraint(S: np.ndarray, W: np.ndarray, Wh: np.ndarray) -> np.ndarray:
    """The same from the constraint form ``S P = I - W C' (C W C')^-1 C`` (singular W)."""
    n, m = S.shape
    C = np.hstack([np.eye(n - m), -S[: n - m]])
    M = np.eye(n) - W @ C.T @ np.linalg.solve(C @ W @ C.T, C)
    return np.diag(M @ Wh @ M.T)


def dense(W: LowRankW) -> np.ndarray:
    return np.diag(W.d) + (0 if W.U is None else W.U @ W.U.T)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 100_000),
    formula=st.sampled_from(FORMULAS),
    rank=st.sampled_from([0, 3, 12]),
    max_block=st.sampled_from([1, 2, 64]),
)
def test_mint_variance_equals_dense(seed: int, formula: str, rank: int, max_block: int) -> None:
    """Every border size, with and without a low-rank part, nested and grouped: 1e-8."""
    rng = np.random.default_rng(seed)
    S = random_hierarchy(rng, formula).S
    n = S.shape[0]
    U = rng.normal(size=(n, rank)) * rng.uniform(0.1, 1.0) if rank else None
    W = LowRankW(rng.uniform(0.2, 3.0, n), U)
    sigma = rng.uniform(0.1, 4.0, n)
    Wh = corr_scaled(W, sigma)
    got = MinTraceVariance(S, W, max_block=max_block).diag(Wh.d, Wh.U)
    ref = dense_variance(S.toarray(), dense(W), dense(Wh))
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-12 * ref.max())
    # W_h = W reduces to the closed form diag(W - W C' K^-1 C W) = diag(S P W) too
    np.testing.assert_allclose(
        MinTraceVariance(S, W, max_block=max_block).diag(W.d, W.U),
        dense_variance(S.toarray(), dense(W), dense(W)),
        rtol=1e-8,
    )


def test_pure_low_rank_covariance_dense_border() -> None:
    """``mint_cov`` (no diagonal part): all aggregates are the border."""
    rng = np.random.default_rng(1)
    S = random_hierarchy(rng, "(a / b) * (c / d)").S
    n, m = S.shape
    W = LowRankW(np.zeros(n), rng.normal(size=(n, n - m + 5)))
    Wh = corr_scaled(W, rng.uniform(0.5, 2.0, n))
    got = MinTraceVariance(S, W).diag(Wh.d, Wh.U)
    ref = dense_variance_constraint(S.toarray(), dense(W), dense(Wh))
    np.testing.assert_allclose(got, ref, rtol=1e-8)


def test_border_split_leaves_uncoupled_small_blocks() -> None:
    rng = np.random.default_rng(3)
    S = random_hierarchy(rng, "(a / b) * (c / d)").S
    na = S.shape[0] - S.shape[1]
    A = S[:na]
    for max_block in (1, 3):
        border, labels = _border_split(A, max_block)
        assert np.all(labels[border] == -1) and np.all(np.delete(labels, border) >= 0)
        assert np.bincount(labels[labels >= 0]).max() <= max_block
        coupled = (A @ A.T).tocoo()
        inside = (labels[coupled.row] >= 0) & (labels[coupled.col] >= 0)
        assert np.all(labels[coupled.row][inside] == labels[coupled.col][inside])
    assert len(_border_split(A, na)[0]) == 0  # everything fits in one block: no border


def test_proportional_horizons_computed_once_equal_each_horizon() -> None:
    rng = np.random.default_rng(4)
    S = random_hierarchy(rng, "(a / b) * c").S
    n = S.shape[0]
    W = LowRankW(rng.uniform(0.5, 2.0, n), rng.normal(size=(n, 4)))
    base = rng.uniform(0.5, 2.0, n)
    base[0] = 0.0  # a node with zero variance (e.g. all-zero residuals) stays in the group
    sigma2 = np.column_stack([base, 2 * base, rng.uniform(0.5, 2.0, n), 3.5 * base])
    groups = proportional_groups(sigma2)
    assert [g[0] for g in groups] == [0, 2]
    op = MinTraceVariance(S, W)
    each = np.column_stack(
        [op.diag(*(lambda w: (w.d, w.U))(corr_scaled(W, np.sqrt(c)))) for c in sigma2.T]
    )
    np.testing.assert_allclose(mint_variance(S, W, sigma2), each, rtol=1e-12)


def problem_for(hier: Hierarchy, rng: np.random.Generator, T: int = 20) -> Problem:
    base = _problem(hier)
    b = rng.gamma(2.0, 5.0, size=(hier.S.shape[1], T))
    y = np.asarray(hier.S @ b)
    return Problem(base.S, base.levels, base.default_path, y, y * rng.normal(0, 0.1, y.shape))


def test_from_projection_matches_methods_and_dense() -> None:
    """A linear method given only by ``P`` gets the same points and variances as MinTrace's
    structured kernel (and as the dense formula)."""
    rng = np.random.default_rng(5)
    hier = random_hierarchy(rng, "(a / b) * c")
    problem = problem_for(hier, rng)
    S = hier.S.toarray()
    yhat = rng.normal(10, 3, size=(problem.n, 3))
    sigma2 = rng.uniform(0.5, 2.0, size=(problem.n, 3))
    mint = MinTrace("mint_shrink").fit(problem, yhat)
    Wd = dense(mint.W)
    Winv_S = np.linalg.solve(Wd, S)
    P = np.linalg.solve(S.T @ Winv_S, Winv_S.T)
    generic = Fitted.from_projection(P, mint.W, S=hier.S)
    np.testing.assert_allclose(generic.bottom(yhat), mint.bottom(yhat), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(generic.variance(sigma2), mint.variance(sigma2), rtol=1e-8)
    # independent errors (W=None): the closed form of bottom-up, (S∘S) σ²_bottom
    bu = BottomUp().fit(problem, yhat)
    m = problem.m
    np.testing.assert_array_equal(bu.variance(sigma2), (S * S) @ sigma2[-m:])
    np.testing.assert_array_equal(bu.bottom(yhat), yhat[-m:])


def test_kind_is_explicit() -> None:
    rng = np.random.default_rng(6)
    problem = problem_for(random_hierarchy(rng, "a / b / c"), rng)
    fit = MinTrace("ols").fit(problem, np.ones((problem.n, 2)))
    with pytest.raises(ReconciliationError, match="unknown kind 'paths'"):
        fit.bottom(np.ones((problem.n, 2)), "paths")
    with pytest.raises(ReconciliationError, match="samples need steps"):
        fit.bottom(np.ones((problem.n, 2)), "samples")


@pytest.mark.parametrize(
    "method",
    [
        BottomUp(nonnegative=True),
        TopDown("forecast_proportions", nonnegative=True),
        TopDown("average_proportions", nonnegative=True),
        MiddleOut("a", nonnegative=True),
    ],
    ids=["bu", "td_fp", "td_ahp", "mo_fp"],
)
def test_nonnegative_every_method_is_coherent_and_nonnegative(method) -> None:
    rng = np.random.default_rng(7)
    hier = random_hierarchy(rng, "a / b / c")
    problem = problem_for(hier, rng)
    yhat = rng.normal(0.5, 3.0, size=(problem.n, 4))
    yhat[0, 1] = -5.0  # a negative top forecast: top-down gives zeros
    fit = method.fit(problem, yhat)
    b = fit.bottom(yhat)
    assert np.all(b >= 0)
    if isinstance(method, BottomUp):
        np.testing.assert_array_equal(b, np.maximum(yhat[-problem.m :], 0.0))
    elif isinstance(method, TopDown):
        assert np.all(b[:, 1] == 0)  # top-down of a non-negative top
    # with non-negative base forecasts the option changes nothing
    plain = type(method)(**{**method.__dict__, "nonnegative": False})
    pos = np.abs(yhat)
    np.testing.assert_array_equal(
        method.fit(problem, pos).bottom(pos), plain.fit(problem, pos).bottom(pos)
    )
    paths = rng.normal(0, 3, size=(problem.n, 8))
    assert np.all(fit.bottom(paths, "samples", np.repeat(np.arange(4), 2)) >= 0)


# ------------------------------------------------------------------------------- registry
def test_adding_a_covariance_estimator_is_one_entry(monkeypatch) -> None:
    """A new estimator in the registry is usable by MinTrace and named by the CLI and errors."""
    from htsforecast.job import make_methods
    from htsforecast.reconciliation._registry import method_names

    def w_double_var(problem, method):
        W, info = cov.COVARIANCES["wls_var"].fn(problem, method)
        return LowRankW(2 * W.d), info

    entry = cov.Estimator(w_double_var, "twice the residual variances")
    monkeypatch.setitem(cov.COVARIANCES, "wls_var2", entry)
    rng = np.random.default_rng(8)
    problem = problem_for(random_hierarchy(rng, "(a / b) * c"), rng)
    yhat = rng.normal(10, 2, size=(problem.n, 2))
    # W scaled by 2 gives the same projection
    np.testing.assert_allclose(
        MinTrace("wls_var2").fit(problem, yhat).bottom(yhat),
        MinTrace("wls_var").fit(problem, yhat).bottom(yhat),
        rtol=1e-10,
    )
    assert "wls_var2" in method_names()
    assert make_methods(("wls_var2",))["wls_var2"] == MinTrace("wls_var2")
    with pytest.raises(ReconciliationError, match="use ols, wls_struct, .*wls_var2"):
        MinTrace("nope").fit(problem, yhat)


def test_sparse_projection_input() -> None:
    S = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))
    P = sp.csr_matrix(np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    fit = Fitted.from_projection(P, S=S, nonnegative=True)
    assert fit.bottom(np.array([[1.0], [2.0], [-1.0]]))[:, 0].tolist() == [2.0, 0.0]


# ------------------------------------------------------------------ border split point solver
def dense_gls(S: np.ndarray, W: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """``S (S' W⁻¹ S)⁻¹ S' W⁻¹ ŷ``: the primal GLS form, not the constraint form."""
    Winv_S = np.linalg.solve(W, S)
    return S @ np.linalg.solve(S.T @ Winv_S, Winv_S.T @ yhat)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 100_000),
    formula=st.sampled_from(FORMULAS),
    max_block=st.sampled_from([1, 2, 64]),
)
def test_border_factor_solves_k0(seed: int, formula: str, max_block: int) -> None:
    """``K0⁻¹ r`` through the border split (every border size) equals a dense solve."""
    rng = np.random.default_rng(seed)
    S = random_hierarchy(rng, formula).S
    n, m = S.shape
    A = S[: n - m]
    d = rng.uniform(0.2, 3.0, n)
    factor = BorderFactor(A, d[: n - m], d[n - m :], max_block)
    K0 = np.diag(d[: n - m]) + A.toarray() @ np.diag(d[n - m :]) @ A.toarray().T
    r = rng.normal(size=(n - m, 3))
    np.testing.assert_allclose(factor.solve(r), np.linalg.solve(K0, r), rtol=1e-9, atol=1e-12)
    # a matvec sums in a different order than the dense product: entries near zero differ by
    # rounding relative to the largest term, not to themselves
    ref = K0 @ r
    np.testing.assert_allclose(factor.matvec(r), ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    assert np.bincount(factor.labels[factor.labels >= 0]).max(initial=0) <= max_block


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 100_000), formula=st.sampled_from(FORMULAS), rank=st.sampled_from([0, 5])
)
def test_point_solvers_agree_with_dense_gls(seed: int, formula: str, rank: int) -> None:
    """Border split, SuperLU and dense Cholesky of ``K0`` give the primal GLS points."""
    rng = np.random.default_rng(seed)
    S = random_hierarchy(rng, formula).S
    n = S.shape[0]
    W = LowRankW(rng.uniform(0.2, 3.0, n), rng.normal(size=(n, rank)) if rank else None)
    yhat = rng.normal(10.0, 3.0, size=(n, 4))
    ref = dense_gls(S.toarray(), dense(W), yhat)
    for k0 in ("border", "splu", "dense"):
        got = S @ mint_bottom(ConstraintSolver(S, W, k0=k0), yhat)
        np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-9 * np.abs(ref).max())


def test_auto_uses_border_split_above_dense_limit() -> None:
    """A grouped hierarchy with 1,730 aggregates: the default solver takes the border split,
    its points equal SuperLU's, and its factor serves the interval variances."""
    a = np.repeat(np.arange(4), 50)
    c = np.repeat(np.arange(5), 20)
    df = pd.DataFrame(
        [
            (f"a{i}", f"a{i}b{j}", f"c{k}", f"c{k}d{q}")
            for j, i in enumerate(a)
            for q, k in enumerate(c)
        ],
        columns=["a", "b", "c", "d"],
    )
    df["ds"], df["y"] = pd.Timestamp("2020-01-01"), 1.0
    hier = Hierarchy.from_formula("(a / b) * (c / d)")
    hier.aggregate(df, freq="D")
    S = hier.S
    n, m = S.shape
    assert n - m == 1730
    rng = np.random.default_rng(8)
    W = LowRankW(rng.uniform(0.5, 2.0, n), 0.3 * rng.normal(size=(n, 6)))
    solver = ConstraintSolver(S, W)
    assert solver.factor is not None and len(solver.factor.border) > 0
    yhat = rng.normal(size=(n, 2))
    np.testing.assert_allclose(
        mint_bottom(solver, yhat),
        mint_bottom(ConstraintSolver(S, W, k0="splu"), yhat),
        rtol=1e-9,
        atol=1e-10,
    )
    sigma2 = rng.uniform(0.5, 2.0, size=(n, 2))
    np.testing.assert_allclose(
        mint_variance(S, W, sigma2, factor=solver.factor), mint_variance(S, W, sigma2), rtol=1e-10
    )


# ------------------------------------------------------------------ non-proportional horizons
def test_linear_basis_reproduces_every_column_entrywise() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.uniform(0.5, 2.0, 50), rng.uniform(0.1, 1.0, 50)
    affine = np.column_stack([a + h * b for h in range(12)])
    affine[3] = 0.0  # a node with zero variance
    basis, coef = linear_basis(affine)
    assert len(basis) == 2
    np.testing.assert_allclose(affine[:, basis] @ coef, affine, rtol=1e-12, atol=1e-300)
    random = rng.uniform(0.5, 2.0, size=(50, 5))
    assert len(linear_basis(random)[0]) == 5
    almost = np.column_stack([a, 2 * a, a + b, 3 * a + b])
    almost[7, 3] *= 1 + 1e-9  # one entry off: that column cannot be a combination
    assert len(linear_basis(almost)[0]) == 3


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 100_000),
    formula=st.sampled_from(FORMULAS),
    rank=st.sampled_from([0, 3, 12]),
    max_block=st.sampled_from([1, 2, 64]),
    chunk=st.sampled_from([1, 5, 4096]),
)
def test_non_proportional_horizons_equal_dense(
    seed: int, formula: str, rank: int, max_block: int, chunk: int
) -> None:
    """ETS-like (affine in h, shared diagonal work), random and proportional horizons in one
    call, through a reused border factor and the point solver's reused low-rank update, rows
    evaluated in chunks of every size: each horizon equals the dense ``S P W_h P' S'``."""
    rng = np.random.default_rng(seed)
    S = random_hierarchy(rng, formula).S
    n, m = S.shape
    W = LowRankW(rng.uniform(0.2, 3.0, n), rng.normal(size=(n, rank)) if rank else None)
    base, growth = rng.uniform(0.2, 2.0, n), rng.uniform(0.0, 1.5, n)
    sigma2 = np.column_stack(
        [base * (1 + growth * h) for h in range(4)] + [rng.uniform(0.2, 2.0, n), 3.0 * base]
    )
    factor = BorderFactor(S[: n - m], W.d[: n - m], W.d[n - m :], max_block)
    woodbury = ConstraintSolver(S, W).woodbury()
    assert (woodbury is None) == (rank == 0)
    got = mint_variance(S, W, sigma2, factor=factor, woodbury=woodbury, chunk=chunk)
    Sd, Wd = S.toarray(), dense(W)
    for h in range(sigma2.shape[1]):
        ref = dense_variance(Sd, Wd, dense(corr_scaled(W, np.sqrt(sigma2[:, h]))))
        np.testing.assert_allclose(got[:, h], ref, rtol=1e-8, atol=1e-12 * ref.max())


def test_singular_gram_and_zero_horizons_equal_dense() -> None:
    """Base variances on a few nodes only: ``Y' E Y`` is singular (no Cholesky factor; the
    plain quadratic form is used) and an all-zero horizon is skipped; both equal dense."""
    rng = np.random.default_rng(12)
    S = random_hierarchy(rng, "(a / b) * (c / d)").S
    n, m = S.shape
    W = LowRankW(rng.uniform(0.5, 2.0, n), 0.5 * rng.normal(size=(n, 3)))
    op = MinTraceVariance(S, W, max_block=1, chunk=4)
    assert op.Y.shape[1] > 2
    E = np.zeros((n, 3))
    E[[0, n - 1], 0] = [1.5, 0.7]  # rank 2 < ρ
    E[:, 2] = rng.uniform(0.5, 2.0, n)
    got = op.variances(E, [None, None, None])
    Sd, Wd = S.toarray(), dense(W)
    for k in range(3):
        ref = dense_variance(Sd, Wd, np.diag(E[:, k]))
        np.testing.assert_allclose(got[:, k], ref, rtol=1e-8, atol=1e-12 * max(ref.max(), 1.0))
    assert np.all(got[:, 1] == 0)
