"""Synthetic M5-like hierarchies and cheap deterministic base forecasts for the benchmarks.

Bottom series are ``store × item`` sales: 3 states, 10 stores (4/3/3 as in M5), 3 categories,
``n_bottom / 10`` items split evenly over the categories, every store selling every item. Two
structures over the same bottom series:

- grouped: ``(state / store) * (cat / item)`` (9 levels, as M5),
- nested:  ``state / store / item`` (a strict tree: the item id is made unique per store).

Base forecasts and in-sample fitted values are a *noisy seasonal naive* of every node (the value
12 periods earlier times ``1 + 0.05 ε``, independent ε per node and period), so the forecasts are
incoherent, the residuals are correlated across the hierarchy, and no model fitting time is
involved. Everything is seeded.

It also holds the independent reference solutions the benchmark compares against
(:func:`reference_weights`, :func:`reference_gls`, :func:`reference_top_down`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from htsforecast import Hierarchy

__all__ = [
    "Synthetic",
    "make_synthetic",
    "level_of_series",
    "reference_weights",
    "reference_gls",
    "reference_top_down",
]

SEASON = 12
FREQ = "MS"
MODEL = "snaive"
STORES = {"CA": ["CA_1", "CA_2", "CA_3", "CA_4"], "TX": ["TX_1", "TX_2", "TX_3"]}
STORES["WI"] = ["WI_1", "WI_2", "WI_3"]
FORMULAS = {"grouped": "(state / store) * (cat / item)", "nested": "state / store / item"}


@dataclass(frozen=True)
class Synthetic:
    """One benchmark problem.

    Attributes
    ----------
    hier : Hierarchy
        Fitted hierarchy (``hier.node_ids`` is the row order of the arrays below).
    Y_hat_df : DataFrame
        Nixtla-style forecasts ``unique_id, ds, snaive`` (``h`` rows per node).
    Y_df : DataFrame
        ``unique_id, ds, y, snaive`` (in-sample actuals and fitted values, ``T`` rows per node).
    yhat, y, fitted : ndarray
        The same numbers as arrays in node order: (n, h), (n, T), (n, T).
    """

    hier: Hierarchy
    Y_hat_df: pd.DataFrame
    Y_df: pd.DataFrame
    yhat: np.ndarray
    y: np.ndarray
    fitted: np.ndarray


def _bottom_values(n_items: int, n_periods: int, rng: np.random.Generator) -> np.ndarray:
    """Positive seasonal series (n_stores * n_items, n_periods): level × season × trend × noise."""
    m = 10 * n_items
    t = np.arange(n_periods)
    level = np.exp(rng.normal(3.0, 1.0, size=(m, 1)))
    phase = rng.uniform(0, SEASON, size=(m, 1))
    amp = rng.uniform(0.1, 0.5, size=(m, 1))
    season = 1.0 + amp * np.sin(2 * np.pi * (t[None, :] + phase) / SEASON)
    trend = 1.0 + rng.normal(0, 0.002, size=(m, 1)) * t[None, :]
    # a common (store-wide) shock makes the residuals correlated across series
    common = rng.normal(0, 0.05, size=(1, n_periods))
    noise = np.exp(common + rng.normal(0, 0.15, size=(m, n_periods)))
    return level * season * np.clip(trend, 0.2, None) * noise


def _bottom_frame(n_items: int, values: np.ndarray, structure: str) -> pd.DataFrame:
    n_periods = values.shape[1]
    stores = [(s, st) for s, sts in STORES.items() for st in sts]
    items = np.arange(n_items)
    cats = np.array(["FOODS", "HOBBIES", "HOUSEHOLD"])[items % 3]
    item_ids = np.char.add(np.char.add(cats, "_"), np.char.zfill(items.astype(str), 5))
    state = np.repeat([s for s, _ in stores], n_items)
    store = np.repeat([st for _, st in stores], n_items)
    cat = np.tile(cats, len(stores))
    item = np.tile(item_ids, len(stores))
    if structure == "nested":
        item = np.char.add(np.char.add(store.astype(str), "_"), item.astype(str))
    keys = {"state": state, "store": store, "cat": cat, "item": item}
    if structure == "nested":
        keys.pop("cat")
    dates = pd.date_range("2010-01-01", periods=n_periods, freq=FREQ)
    frame = {k: np.repeat(v, n_periods) for k, v in keys.items()}
    frame["ds"] = np.tile(dates.to_numpy(), len(state))
    frame["y"] = values.ravel()
    return pd.DataFrame(frame)


def make_synthetic(
    n_bottom: int, structure: str = "grouped", T: int = 120, h: int = 12, seed: int = 0
) -> Synthetic:
    """Build the hierarchy, the Nixtla frames and the arrays for ``n_bottom`` bottom series.

    Parameters
    ----------
    n_bottom : int
        Multiple of 10 (10 stores × n_bottom / 10 items).
    structure : {"grouped", "nested"}
    T, h : int
        In-sample periods and forecast horizon.
    seed : int
        The same seed gives the same bottom values for both structures.
    """
    if n_bottom % 10:
        raise ValueError(f"n_bottom must be a multiple of 10, got {n_bottom}.")
    n_items = n_bottom // 10
    rng = np.random.default_rng(seed)
    values = _bottom_values(n_items, SEASON + T, rng)
    hier = Hierarchy.from_formula(FORMULAS[structure])
    long = hier.aggregate(_bottom_frame(n_items, values, structure), freq=FREQ)
    n = hier.n_nodes
    Y = long["y"].to_numpy().reshape(n, SEASON + T)  # node order, dates ascending
    dates = pd.DatetimeIndex(long["ds"].iloc[: SEASON + T])
    noise = np.random.default_rng(seed + 1).normal(0, 0.05, size=(n, T + h))
    y = Y[:, SEASON:]
    fitted = Y[:, :T] * (1 + noise[:, :T])
    last = Y[:, -SEASON:]
    yhat = np.tile(last, (1, -(-h // SEASON)))[:, :h] * (1 + noise[:, T:])
    ids = np.asarray(hier.node_ids, dtype=object)
    fc_dates = pd.date_range(dates[-1], periods=h + 1, freq=FREQ)[1:]
    Y_hat_df = pd.DataFrame(
        {
            "unique_id": np.repeat(ids, h),
            "ds": np.tile(fc_dates.to_numpy(), n),
            MODEL: yhat.ravel(),
        }
    )
    Y_df = pd.DataFrame(
        {
            "unique_id": np.repeat(ids, T),
            "ds": np.tile(dates[SEASON:].to_numpy(), n),
            "y": y.ravel(),
            MODEL: fitted.ravel(),
        }
    )
    return Synthetic(hier, Y_hat_df, Y_df, yhat, y, fitted)


# --------------------------------------------------------------------------- reference solutions
# Independent of htsforecast's kernel: the *primal* normal equations (S' W^-1 S) b = S' W^-1 yhat
# (htsforecast solves the constraint form), shrinkage intensity from the pairwise definition.


def level_of_series(y: np.ndarray) -> np.ndarray:
    """Scale used for relative differences: mean |y| of each node over the in-sample periods."""
    return np.maximum(np.abs(y).mean(axis=1), 1e-12)


def reference_weights(
    method: str,
    S,
    resid: np.ndarray,
    ridge: float = 2e-8,
    block: int = 2048,
    pairwise_max: int = 12_000,
):
    """``W = diag(d) + U U'`` for a MinTrace method, written from the definitions.

    ``mint_shrink``: Schäfer & Strimmer (2005) target "diagonal, unequal variance", intensity
    λ = Σ_{i≠j} Var(r_ij) / Σ_{i≠j} r_ij², the pairwise sums taken block by block over the
    n x n correlation matrix (never the whole matrix at once) when ``n <= pairwise_max``; beyond
    that (O(n² T): minutes at 42,000 nodes) through the T x T Gram identity
    Σ_ij (Σ_t z_it z_jt)² = ||Z'Z||_F² (checked once against the pairwise sums at 30,000 bottom
    series: the same λ to 15 digits). The diagonal is floored at ``ridge``.
    Returns ``(d, U, lam)``; ``d`` is None for ``mint_cov`` (the sample covariance alone).
    """
    n, T = resid.shape
    if method == "ols":
        return np.ones(n), None, None
    if method == "wls_struct":
        return np.asarray(S.sum(axis=1), dtype=float).ravel(), None, None
    if method == "wls_var":
        return (resid**2).mean(axis=1) + 2e-8, None, None
    Xc = resid - resid.mean(axis=1, keepdims=True)
    if method == "mint_cov":
        return None, Xc / np.sqrt(T - 1), None
    var = (Xc**2).sum(axis=1) / (T - 1)
    Z = Xc / np.sqrt(var)[:, None]
    num, den = _shrinkage_sums(Z, block) if n <= pairwise_max else _shrinkage_sums_gram(Z)
    lam = float(min(max(num / den, 0.0), 1.0))
    d = np.maximum(var, ridge) - (1 - lam) * var  # diag(W) = max(var, ridge)
    return d, np.sqrt((1 - lam) / (T - 1)) * Xc, lam


def _shrinkage_sums(Z: np.ndarray, block: int) -> tuple[float, float]:
    """Σ_{i≠j} Var(r_ij) and Σ_{i≠j} r_ij², pair by pair (block of rows against all rows)."""
    n, T = Z.shape
    Z2 = Z**2
    num = den = 0.0
    for s in range(0, n, block):
        zb, z2b = Z[s : s + block], Z2[s : s + block]
        sum_w = zb @ Z.T  # Σ_t w_ijt, w_ijt = z_it z_jt
        sum_w2 = z2b @ Z2.T  # Σ_t w_ijt²
        var_r = T / (T - 1) ** 3 * (sum_w2 - sum_w**2 / T)
        r2 = (sum_w / (T - 1)) ** 2
        idx = np.arange(len(zb))
        var_r[idx, s + idx] = 0.0
        r2[idx, s + idx] = 0.0
        num += var_r.sum()
        den += r2.sum()
    return num, den


def _shrinkage_sums_gram(Z: np.ndarray) -> tuple[float, float]:
    """The same two sums through T x T Gram matrices (O(n T²))."""
    T = Z.shape[1]
    Z2 = Z**2
    diag_w = (Z2**2).sum()  # Σ_i Σ_t w_iit²
    sum_w2 = (Z2.sum(axis=0) ** 2).sum() - diag_w
    gram = sla_syrk(Z)
    sum_gram2 = (gram**2).sum() - ((Z2.sum(axis=1)) ** 2).sum()
    num = T / (T - 1) ** 3 * (sum_w2 - sum_gram2 / T)
    return num, sum_gram2 / (T - 1) ** 2


def sla_syrk(Z: np.ndarray) -> np.ndarray:
    """``Z' Z`` (T x T) by BLAS syrk (the plain matmul of a tall-skinny matrix is erratic with
    2 OpenBLAS threads on a loaded machine)."""
    import scipy.linalg as sla

    G = sla.blas.dsyrk(1.0, np.asfortranarray(Z), trans=1)
    return np.triu(G) + np.triu(G, 1).T


def reference_gls(S, d: np.ndarray, U: np.ndarray | None, yhat: np.ndarray, big: int = 20):
    """Bottom forecasts ``b`` solving ``(S' W^-1 S) b = S' W^-1 yhat`` directly.

    ``S' D^-1 S`` is split into a sparse part (rows of S with at most ``big`` members: a block
    structure with little fill, factorised by SuperLU) and a dense low-rank part (the few large
    aggregates); ``W^-1`` and the low-rank parts are applied with the Woodbury identity. Two
    steps of iterative refinement with the exact operator. Returns ``(b, relative residual)``.
    """
    import scipy.linalg as sla
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    S = sp.csr_matrix(S)
    dinv = 1.0 / d
    large = S.getnnz(axis=1) > big
    Ss, Sb = S[~large], S[large]
    K = (Ss.T @ sp.diags(dinv[~large]) @ Ss).tocsc()
    Z = (Sb.T @ sp.diags(np.sqrt(dinv[large]))).toarray()
    Cinv = np.eye(Z.shape[1])
    winv = lambda x: dinv[:, None] * x  # noqa: E731
    if U is not None:
        DU = dinv[:, None] * U
        M = np.eye(U.shape[1]) + U.T @ DU
        M_lu = sla.lu_factor(M)
        winv = lambda x: dinv[:, None] * x - DU @ sla.lu_solve(M_lu, DU.T @ x)  # noqa: E731
        Z = np.hstack([Z, np.asarray(S.T @ DU)])
        Cinv = sla.block_diag(Cinv, -M)
    lu = spla.splu(K)
    KZ = lu.solve(Z)
    inner = sla.lu_factor(Cinv + Z.T @ KZ)

    def solve(r: np.ndarray) -> np.ndarray:
        x = lu.solve(r)
        return x - KZ @ sla.lu_solve(inner, Z.T @ x)

    def normal(b: np.ndarray) -> np.ndarray:
        return np.asarray(S.T @ winv(np.asarray(S @ b)))

    rhs = np.asarray(S.T @ winv(yhat))
    b = solve(rhs)
    for _ in range(2):
        b = b + solve(rhs - normal(b))
    res = np.abs(rhs - normal(b)).max() / np.abs(rhs).max()
    return b, float(res)


def reference_top_down(syn: Synthetic, method: str, path: list[str]) -> np.ndarray:
    """Top-down from the total along ``path`` (level names), all nodes, shape (n, h).

    ``average_proportions``: share_j = mean_t(y_jt / y_total,t); ``forecast_proportions``: the
    product along the path of each node's base forecast over the sum of its siblings'.
    """
    hier = syn.hier
    index = {u: i for i, u in enumerate(hier.node_ids)}
    bottom = np.array([index[u] for u in hier.bottom_ids])
    top = syn.yhat[index["total"]]
    if method == "average_proportions":
        share = (syn.y[bottom] / syn.y[index["total"]]).mean(axis=1)
        return np.asarray(hier.S @ (share[:, None] * top[None, :]))
    ratio = {"total": np.ones(syn.yhat.shape[1])}
    for lv in path[1:]:
        ids = hier.levels[lv]
        parent = [u.rsplit("/", 1)[0] if "/" in u else "total" for u in ids]
        vals = pd.DataFrame(syn.yhat[[index[u] for u in ids]])
        sums = vals.groupby(parent).transform("sum").to_numpy()
        for u, p, row in zip(ids, parent, vals.to_numpy() / sums):
            ratio[u] = ratio[p] * row
    shares = np.stack([ratio[u] for u in hier.bottom_ids])
    return np.asarray(hier.S @ (shares * top[None, :]))
