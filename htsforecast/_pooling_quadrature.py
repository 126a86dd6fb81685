"""Posterior of a varying-slope model's hyperparameters by quadrature (no MCMC): the reference
that ``pooling.fit(..., varying_slopes=True, engine="pymc")`` is checked against.

Model (Gelman & Hill ch. 13, ``lmer(y ~ x + (1 + x | county))``, one binary or numeric ``x``): ``y = X b + Z_j u_j + e`` with
``u_j ~ N(0, G)``, ``G = [[sa^2, r sa sb], [r sa sb, sb^2]]``, ``e ~ N(0, s^2)``, ``X = Z = [1, x]``.
Integrating the county effects ``u`` out and the fixed effects ``b`` against a flat prior leaves
the restricted (REML) likelihood of ``theta = (sa, sb, r, s)``::

    log L_R = -1/2 (log|V| + log|X'V^-1 X| + y'V^-1 y - b_hat' X'V^-1 y)

with ``V`` block-diagonal over counties; each block is handled through county sums and 2 x 2
Woodbury algebra (``M_j = s^2 G^-1 + Z_j'Z_j``). The REML estimate is the joint maximiser of
``L_R``, i.e. the joint posterior mode of ``theta`` under flat priors. The marginal posterior of
each hyperparameter is ``L_R(theta) p(theta)`` summed over a grid of the other three, under flat
priors and under the PyMC model's priors (``_pooling_bayes``: half-normal sds of scale
``2 s_y`` and ``2 s_y / s_x``, LKJ(1) = uniform correlation, exponential residual sd of mean
``s_y``); the PyMC model's normal priors on ``b`` are wide enough to count as flat.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats

__all__ = ["Counties", "marginals", "reml", "restricted_loglik"]

#: Grid: sa, sb, r, s (wide enough to hold all the posterior mass of the Minnesota radon data)
GRID = {
    "group_sd": np.linspace(0.05, 0.80, 31),
    "slope_sd": np.linspace(0.0025, 1.2, 96),
    "corr": np.linspace(-0.99, 0.99, 45),
    "residual_sd": np.linspace(0.70, 0.80, 7),
}


class Counties:
    """Group sums of ``y`` (n,), ``x`` (n,) and group labels ``g`` (n,): ``Z'Z`` (J, 2, 2),
    ``Z'y`` (J, 2), ``y'y``, n, J, and the sds of ``y`` and ``x`` (the priors' scales)."""

    def __init__(self, y: np.ndarray, x: np.ndarray, g: np.ndarray) -> None:
        y, x = np.asarray(y, float), np.asarray(x, float)
        g = np.unique(np.asarray(g), return_inverse=True)[1]
        n, sx, sxx = (np.bincount(g, w) for w in (None, x, x * x))
        self.zz = np.stack([np.stack([n, sx], -1), np.stack([sx, sxx], -1)], -2)
        self.zy = np.stack([np.bincount(g, y), np.bincount(g, x * y)], -1)
        self.yy, self.n, self.j = float(y @ y), len(y), len(n)
        self.s_y, self.s_x = float(np.std(y)), float(np.std(x))


def _inv2(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and determinant of stacked 2 x 2 matrices (..., 2, 2)."""
    det = m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]
    adj = np.stack([np.stack([m[..., 1, 1], -m[..., 0, 1]], -1),
                    np.stack([-m[..., 1, 0], m[..., 0, 0]], -1)], -2)  # fmt: skip
    return adj / det[..., None, None], det


def restricted_loglik(c: Counties, sa, sb, r, s) -> np.ndarray:
    """``log L_R`` (up to a constant) at parameter arrays of one shape (broadcast)."""
    sa, sb, r, s = np.broadcast_arrays(*(np.asarray(v, float) for v in (sa, sb, r, s)))
    shape = sa.shape
    sa, sb, r, s2 = (v.reshape(-1, 1) for v in (sa, sb, r, s**2))  # (P, 1)
    g = np.stack([np.stack([sa**2, r * sa * sb], -1), np.stack([r * sa * sb, sb**2], -1)], -2)
    g_inv, det_g = _inv2(g)
    m_inv, det_m = _inv2(s2[..., None, None] * g_inv + c.zz[None])  # (P, J, 2, 2)
    zz_m = c.zz[None] @ m_inv
    xvx = (c.zz[None] - zz_m @ c.zz[None]).sum(1) / s2[..., None]  # X'V^-1 X (P, 2, 2)
    xvy = (c.zy[None] - np.einsum("pjab,jb->pja", zz_m, c.zy)).sum(1) / s2  # X'V^-1 y (P, 2)
    yvy = (c.yy - np.einsum("ja,pjab,jb->p", c.zy, m_inv, c.zy)) / s2[:, 0]
    # |V| = prod_j s^(2 n_j) |G| |M_j| / s^4
    logdet_v = (c.n - 2 * c.j) * np.log(s2[:, 0]) + c.j * np.log(det_g[:, 0])
    logdet_v = logdet_v + np.log(det_m).sum(1)
    xvx_inv, det_xvx = _inv2(xvx)
    quad = yvy - np.einsum("pa,pab,pb->p", xvy, xvx_inv, xvy)
    return (-0.5 * (logdet_v + np.log(det_xvx) + quad)).reshape(shape)


def reml(c: Counties) -> dict[str, float]:
    """Joint maximiser of ``L_R``: ``group_sd, slope_sd, corr, residual_sd`` (optimised with
    the sds on the log scale and the correlation through tanh)."""

    def params(t: np.ndarray) -> tuple[float, float, float, float]:
        return float(np.exp(t[0])), float(np.exp(t[1])), float(np.tanh(t[2])), float(np.exp(t[3]))

    def nll(t: np.ndarray) -> float:
        return -float(restricted_loglik(c, *params(t)))

    t = optimize.minimize(nll, np.log([0.3, 0.3, 1.0, 0.75]) - [0, 0, 0.3, 0],
                          method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-10,
                                                         "maxiter": 5000}).x  # fmt: skip
    return dict(zip(GRID, params(t)))


def log_prior(c: Counties, sa, sb, s) -> np.ndarray:
    """The PyMC model's priors on the sds (the LKJ(1) correlation prior is flat)."""
    return (
        stats.halfnorm.logpdf(sa, scale=2 * c.s_y)
        + stats.halfnorm.logpdf(sb, scale=2 * c.s_y / c.s_x)
        + stats.expon.logpdf(s, scale=c.s_y)
    )


def marginals(c: Counties, grid: dict[str, np.ndarray] = GRID) -> pd.DataFrame:
    """Mean, median and mode of each hyperparameter's marginal posterior on the grid, under
    flat priors and under the PyMC priors (rows ``prior, parameter``)."""
    axes = list(grid.values())
    mesh = np.meshgrid(*axes, indexing="ij")
    ll = np.empty(mesh[0].shape)
    for i in range(len(axes[1])):  # one slope sd at a time keeps memory small
        ll[:, i] = restricted_loglik(c, mesh[0][:, i], mesh[1][:, i], mesh[2][:, i], mesh[3][:, i])
    rows = []
    for prior, lp in (("flat", ll), ("pymc priors", ll + log_prior(c, mesh[0], mesh[1], mesh[3]))):
        w = np.exp(lp - lp.max())
        for k, (name, ax) in enumerate(grid.items()):
            m = w.sum(axis=tuple(a for a in range(4) if a != k))
            m /= m.sum()
            rows.append({"prior": prior, "parameter": name, "mean": float(ax @ m),
                         "median": float(ax[np.searchsorted(np.cumsum(m), 0.5)]),
                         "marginal mode": float(ax[m.argmax()]),
                         "joint mode": float(ax[np.unravel_index(lp.argmax(), lp.shape)[k]])})  # fmt: skip
    return pd.DataFrame(rows)


def report(mn: pd.DataFrame) -> str:
    """Printable REML check and marginal posteriors of Gelman & Hill's varying-slope model on
    the Minnesota radon data (``log_radon ~ floor``, ``county``)."""
    c = Counties(mn["log_radon"], mn["floor"], mn["county"])
    est = {k: round(v, 4) for k, v in reml(c).items()}
    tab = marginals(c)
    sizes = " x ".join(str(len(v)) for v in GRID.values())
    return (
        f"\nquadrature (restricted likelihood, grid {sizes}):\nREML = joint mode under flat "
        f"priors, by optimisation: {est}\n" + tab.round(3).to_string(index=False)
    )
