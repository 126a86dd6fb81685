"""Complete, no and partial pooling of a grouped linear regression (the radon multilevel model).

Gelman & Hill (2007, ch. 12-13) model the log radon level of home ``i`` in county ``j`` as
``y_i = a_j + b * x_i + e_i`` with ``x`` the floor of the measurement (0 basement, 1 first
floor). Three ways to estimate the county intercepts ``a_j``:

* ``how="pooled"`` (complete pooling): one regression, every county gets the same intercept.
* ``how="unpooled"`` (no pooling): every county its own intercept (and, with
  ``varying_slopes=True``, its own slope), estimated from its own homes only.
* ``how="partial"`` (partial pooling, the multilevel model): ``a_j ~ N(mu, group_sd^2)``, fitted by
  restricted maximum likelihood (REML) as ``lmer(y ~ x + (1 | county))`` does. Each county's
  estimate is a precision-weighted compromise between its own data and the group mean: counties
  with few homes are shrunk strongly, counties with many hardly at all. With ``varying_slopes=True``
  the slopes vary too, ``(1 + x | county)``.

This is the same shrinkage that makes small, noisy bottom series usable in a hierarchy.

>>> from htsforecast.datasets import load_radon_survey
>>> from htsforecast import pooling
>>> survey = load_radon_survey()
>>> mn = survey[survey["survey"] == "MN"]          # Gelman & Hill's 919 Minnesota homes
>>> res = pooling.fit(mn, "log_radon ~ floor", group="county", how="partial")
>>> round(res.summary["intercept"], 2), round(res.summary["floor"], 2)
(1.46, -0.69)

The varying-intercept REML fit is computed here in closed form over group sums (a profiled
one-dimensional likelihood, fast on the whole survey); the varying-slope fit uses statsmodels'
``MixedLM``. References: Gelman, A. & Hill, J. (2007) *Data Analysis Using Regression and
Multilevel/Hierarchical Models*, ch. 12-13, 21.6 (pooling factors).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import linalg, optimize, special

from htsforecast.errors import DataError
from htsforecast.validation import format_examples, require_columns

__all__ = [
    "BayesPoolingResult",  # noqa: F822 - engine="pymc" names, loaded lazily by __getattr__
    "ConvergenceWarning",  # noqa: F822
    "Diagnostics",  # noqa: F822
    "PoolingResult",
    "fit",
    "shrunk_estimates",
]

How = Literal["pooled", "unpooled", "partial"]
_HOWS = ("pooled", "unpooled", "partial")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class PoolingResult:
    """A fitted pooled, unpooled or partially pooled grouped regression.

    Attributes
    ----------
    how : {"pooled", "unpooled", "partial"}
    formula : str
        ``"response ~ predictor + ..."`` as given to :func:`fit`.
    group : str
        Name of the grouping column (e.g. ``"county"``).
    nested_in : str or None
        Column the groups are nested in (e.g. ``"state"``); then each parent has its own intercept
        and groups are shrunk toward their parent's intercept.
    varying_slopes : bool
        Whether the slope of the (single) predictor varies by group.
    summary : dict
        ``intercept`` and ``intercept_se`` (without ``nested_in``) or ``intercepts`` and
        ``intercept_ses`` (dicts parent -> value, with ``nested_in``); one entry per predictor
        named after it (e.g. ``floor``) plus ``<predictor>_se``; ``group_sd`` (sd of the group
        intercepts: 0 for complete pooling, ``inf`` for no pooling), ``residual_sd``, ``n_obs``,
        ``n_groups``; with varying slopes also ``slope_sd`` and ``corr`` (correlation of group
        intercepts and slopes). For ``how="unpooled"`` the intercept (and varying slope) is the
        unweighted mean of the group estimates and its standard error is NaN.
    groups : pandas.DataFrame
        One row per group, sorted by group: the group column (and ``nested_in``), ``n``,
        ``intercept``, ``intercept_se``, ``shrinkage`` (0 = own data only, 1 = group mean only;
        for partial pooling ``condvar(a_j) / group_sd^2``, Gelman & Hill's pooling factor),
        ``group_mean`` (the value groups are shrunk toward). Varying slopes add ``<predictor>``,
        ``<predictor>_se`` and ``<predictor>_shrinkage``. The varying-intercept partial fit adds
        ``unpooled``: the group's own intercept given the common slopes, ``mean(y - x b)``; then
        ``intercept = group_mean + (1 - shrinkage) * (unpooled - group_mean)`` exactly.
        Partial-pooling standard errors are conditional on the fixed effects (lme4's ``condVar``,
        arm's ``se.ranef``).
    """

    how: str
    formula: str
    group: str
    nested_in: str | None
    varying_slopes: bool
    summary: dict[str, Any]
    groups: pd.DataFrame = field(repr=False)

    @property
    def predictors(self) -> list[str]:
        """Predictor names in formula order."""
        return _parse_formula(self.formula)[1]

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        """Group-specific mean of the response for each row of ``data``, shape ``(len(data),)``.

        Rows whose group was not in the fitted data get the group mean (their parent's intercept
        for nested fits) under pooled/partial fits, and NaN under unpooled fits.
        """
        preds = self.predictors
        keys = [self.group] if self.nested_in is None else [self.nested_in, self.group]
        require_columns(data, [*keys, *preds], "data")
        table = self.groups.set_index(self.group)
        a = data[self.group].map(table["intercept"]).to_numpy(dtype=float)
        fallback = self._fallback_intercept(data)
        a = np.where(np.isnan(a), fallback, a)
        out = a.copy()
        for p in preds:
            if self.varying_slopes:
                b = data[self.group].map(table[p]).to_numpy(dtype=float)
                b = np.where(np.isnan(b), np.nan if self.how == "unpooled" else self.summary[p], b)
            else:
                b = self.summary[p]
            out += b * data[p].to_numpy(dtype=float)
        return out

    def exceedance(self, data: pd.DataFrame, threshold: float) -> np.ndarray:
        """Probability that the response exceeds ``threshold`` for each row of ``data``, under the
        fitted normal ``N(predict(data), residual_sd^2)`` (parameter uncertainty ignored).

        For the radon survey, ``threshold=np.log(4)`` gives the probability that a home measures
        at or above the EPA action level of 4 pCi/L.
        """
        z = (self.predict(data) - threshold) / self.summary["residual_sd"]
        return special.ndtr(z)

    def _fallback_intercept(self, data: pd.DataFrame) -> np.ndarray:
        if self.how == "unpooled":
            return np.full(len(data), np.nan)
        if self.nested_in is None:
            return np.full(len(data), self.summary["intercept"])
        means = pd.Series(self.summary["intercepts"], dtype=float)
        return data[self.nested_in].astype(str).map(means).to_numpy(dtype=float)


@dataclass(frozen=True)
class _Design:
    """Validated arrays: response, predictors, group codes, parent intercept design."""

    y: np.ndarray  # (n,)
    x: np.ndarray  # (n, k) predictors
    codes: np.ndarray  # (n,) group index 0..J-1
    labels: np.ndarray  # (J,) group labels, sorted
    parent_codes: np.ndarray  # (J,) parent index of each group (all 0 when not nested)
    parents: list[str]  # parent labels (["(all)"] when not nested)
    predictors: list[str]

    @property
    def n(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(self.labels)).astype(float)

    def intercept_design(self) -> np.ndarray:
        """(n, n_parents) indicator of each row's parent (a column of ones when not nested)."""
        parent_of_row = self.parent_codes[self.codes]
        return (parent_of_row[:, None] == np.arange(len(self.parents))[None, :]).astype(float)


def fit(
    data: pd.DataFrame,
    formula: str = "log_radon ~ floor",
    group: str = "county",
    how: How = "partial",
    varying_slopes: bool = False,
    nested_in: str | None = None,
    *,
    engine: Literal["reml", "pymc"] = "reml",
    **bayes: Any,
) -> PoolingResult:
    """Fit a grouped linear regression with complete, no or partial pooling.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per observation (e.g. :func:`htsforecast.datasets.load_radon_survey`).
    formula : str
        ``"response ~ x1 + x2"`` (numeric columns; ``"response ~ 1"`` for intercepts only).
    group : str
        Grouping column; its groups get their own (or shrunk) intercepts.
    how : {"pooled", "unpooled", "partial"}
        Complete pooling, no pooling, or partial pooling (REML multilevel model).
    varying_slopes : bool
        Let the slope of the predictor vary by group too (needs exactly one predictor). Unpooled:
        one regression per group; partial: ``(1 + x | group)`` via statsmodels ``MixedLM``.
    nested_in : str, optional
        A column the groups nest in (e.g. ``"state"``): one intercept per parent, and groups are
        shrunk toward their parent's intercept instead of one common mean.
    engine : {"reml", "pymc"}
        ``"reml"`` (default): least squares / restricted maximum likelihood, as above.
        ``"pymc"``: the same three models fitted by MCMC with PyMC (``pip install
        "htsforecast[bayes]"``), giving posteriors; see :mod:`htsforecast._pooling_bayes` for
        the model and priors.
    **bayes
        Options of ``engine="pymc"`` only: ``draws`` (1000 per chain), ``tune`` (default
        ``draws``), ``chains`` (4), ``seed`` (None; an int makes the draws reproducible),
        ``centered`` (False: non-centred group effects), ``hdi_prob`` (0.94) and
        ``sampler_kwargs`` (passed to ``pymc.sample``, e.g. ``{"cores": 1,
        "target_accept": 0.95}``; default ``target_accept=0.9``).

    Returns
    -------
    PoolingResult
        ``.summary`` (dict) and ``.groups`` (one row per group); see :class:`PoolingResult`.
        With ``engine="pymc"`` a :class:`BayesPoolingResult`: posterior means in the same
        places, posterior sds in ``*_se``, HDIs in ``*_hdi_lo``/``*_hdi_hi``, plus
        ``.posterior`` (ArviZ InferenceData) and ``.diagnostics``.

    Raises
    ------
    DataError
        Missing column, NaN in the group/parent/response/predictor columns, a non-numeric
        response or predictor, a predictor with no variance, a group under two parents, too few
        groups for partial pooling, or (no pooling) a predictor constant within every group.

    Warns
    -----
    UserWarning
        ``how="unpooled", varying_slopes=True``: groups where the predictor does not vary (e.g. a
        county with one home) have no identifiable slope; their slope (and, unless the predictor
        is 0 there, their intercept) is NaN. Complete and partial pooling estimate every group.
    ConvergenceWarning
        ``engine="pymc"``: divergent transitions, R-hat > 1.01 or bulk ESS < 100 per chain; the
        message names the parameters.
    """
    if how not in _HOWS:
        raise DataError(f"how must be one of {', '.join(map(repr, _HOWS))}; got {how!r}.")
    if engine != "reml" or bayes:
        from htsforecast._pooling_bayes import check_options

        check_options(engine, bayes)
    d = _design(data, formula, group, nested_in)
    if varying_slopes and len(d.predictors) != 1:
        raise DataError(
            f"varying_slopes=True needs exactly one predictor, but formula {formula!r} has "
            f"{len(d.predictors)}. Hint: use a formula like 'log_radon ~ floor'."
        )
    if how == "partial":
        _check_partial(d, group, nested_in)
    if engine == "pymc":
        from htsforecast._pooling_bayes import fit_result

        return fit_result(d, how, formula, group, nested_in, varying_slopes, bayes)
    if how == "pooled":
        summary, groups = _fit_pooled(d)
    elif how == "unpooled":
        summary, groups = _fit_unpooled_slopes(d) if varying_slopes else _fit_unpooled(d)
    else:
        summary, groups = _fit_partial_slopes(d) if varying_slopes else _fit_partial(d)
    summary = {**summary, "n_obs": len(d.y), "n_groups": len(d.labels)}
    groups = _label_groups(groups, d, group, nested_in)
    return PoolingResult(how, formula, group, nested_in, varying_slopes, summary, groups)


def _check_partial(d: _Design, group: str, nested_in: str | None) -> None:
    if len(d.labels) < 2 or len(d.labels) <= len(d.parents):
        raise DataError(
            f"partial pooling needs several groups (more than {'parents' if nested_in else 1}) "
            f"to estimate the spread between them, but column '{group}' has only "
            f"{len(d.labels)}. Hint: use how='unpooled' or how='pooled'."
        )


def shrunk_estimates(
    data: pd.DataFrame,
    formula: str = "log_radon ~ floor",
    group: str = "county",
    nested_in: str | None = None,
) -> pd.DataFrame:
    """Side-by-side no-pooling, partial-pooling and complete-pooling intercepts per group.

    The helper for analysts: "what is my county's radon level, borrowing strength from the rest?"

    >>> from htsforecast.datasets import load_radon_survey
    >>> survey = load_radon_survey()
    >>> est = shrunk_estimates(survey[survey["floor"].isin([0, 1])], nested_in="state")
    >>> est.columns.tolist()[:4]
    ['state', 'county', 'n', 'unpooled']

    Returns
    -------
    pandas.DataFrame
        One row per group (sorted): the group column (and ``nested_in``), ``n``, ``unpooled``
        and ``unpooled_se`` (no pooling: own intercept, common slopes), ``partial`` and
        ``partial_se`` (varying-intercept REML fit), ``pooled`` (complete pooling intercept,
        the parent's with ``nested_in``), ``group_mean`` (what the partial estimate is shrunk
        toward) and ``shrinkage`` (0 = own data only, 1 = group mean only). Intercepts are the
        response at predictor value 0 (for radon: the basement log radon level).
    """
    part = fit(data, formula, group, "partial", nested_in=nested_in)
    unp = fit(data, formula, group, "unpooled", nested_in=nested_in).groups
    pool = fit(data, formula, group, "pooled", nested_in=nested_in).groups
    keys = [group] if nested_in is None else [nested_in, group]
    out = part.groups[[*keys, "n"]].copy()
    out["unpooled"] = unp["intercept"].to_numpy()
    out["unpooled_se"] = unp["intercept_se"].to_numpy()
    out["partial"] = part.groups["intercept"].to_numpy()
    out["partial_se"] = part.groups["intercept_se"].to_numpy()
    out["pooled"] = pool["intercept"].to_numpy()
    out["group_mean"] = part.groups["group_mean"].to_numpy()
    out["shrinkage"] = part.groups["shrinkage"].to_numpy()
    return out


def __getattr__(name: str) -> Any:
    """The PyMC engine's public names, imported on first use (PyMC itself is imported only
    when ``engine="pymc"`` is fitted)."""
    if name in ("BayesPoolingResult", "ConvergenceWarning", "Diagnostics"):
        from htsforecast import _pooling_bayes

        return getattr(_pooling_bayes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------
# validation -> arrays


def _parse_formula(formula: str) -> tuple[str, list[str]]:
    if not isinstance(formula, str) or formula.count("~") != 1:
        raise DataError(
            f"formula must look like 'response ~ x1 + x2' (one '~'), got {formula!r}. "
            "Hint: 'log_radon ~ floor'."
        )
    lhs, rhs = (s.strip() for s in formula.split("~"))
    terms = [t.strip() for t in rhs.split("+")]
    preds = [t for t in terms if t not in ("1", "")]
    bad = [t for t in [lhs, *preds] if not _NAME.match(t)]
    if bad or "" in terms:
        raise DataError(
            f"formula {formula!r}: terms must be column names joined by '+' "
            f"(bad: {format_examples(bad or [''])}). Interactions and transforms are not "
            "supported; add a column instead."
        )
    return lhs, preds


def _numeric(data: pd.DataFrame, col: str) -> np.ndarray:
    s = data[col]
    if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
        raise DataError(
            f"column '{col}' must be numeric, got dtype {s.dtype}. Hint: encode it as 0/1."
        )
    v = s.to_numpy(dtype=float)
    bad = data.index[~np.isfinite(v)]
    if len(bad):
        raise DataError(
            f"column '{col}' has {len(bad)} missing or infinite value(s), at row(s) "
            f"{format_examples(bad)}. Hint: drop those rows first."
        )
    return v


def _codes(data: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
    bad = data.index[data[col].isna().to_numpy()]
    if len(bad):
        raise DataError(
            f"group column '{col}' has {len(bad)} missing value(s), at row(s) "
            f"{format_examples(bad)}. Hint: drop those rows or label them."
        )
    codes, labels = pd.factorize(data[col].astype(str), sort=True)
    return codes.astype(np.intp), np.asarray(labels, dtype=object)


def _design(data: pd.DataFrame, formula: str, group: str, nested_in: str | None) -> _Design:
    response, preds = _parse_formula(formula)
    cols = [response, *preds, group] + ([nested_in] if nested_in else [])
    require_columns(data, cols, "data")
    if len(data) == 0:
        raise DataError("data has no rows. Hint: check the filter that produced it.")
    y = _numeric(data, response)
    x = np.column_stack([_numeric(data, p) for p in preds]) if preds else np.empty((len(y), 0))
    for j, p in enumerate(preds):
        if np.ptp(x[:, j]) == 0:
            raise DataError(
                f"predictor '{p}' has no variance (every row is {x[0, j]:g}), so its slope "
                f"cannot be estimated. Hint: drop it from the formula ({response} ~ 1)."
            )
    codes, labels = _codes(data, group)
    if nested_in is None:
        return _Design(y, x, codes, labels, np.zeros(len(labels), np.intp), ["(all)"], preds)
    pcodes, parents = _codes(data, nested_in)
    per_group = pd.DataFrame({"g": codes, "p": pcodes}).drop_duplicates()
    twice = per_group[per_group["g"].duplicated(keep=False)]
    if len(twice):
        g = twice["g"].iloc[0]
        names = parents[twice.loc[twice["g"] == g, "p"]].tolist()
        raise DataError(
            f"group '{labels[g]}' of column '{group}' appears under several '{nested_in}' "
            f"values ({format_examples(names)}). Hint: make group labels unique across parents."
        )
    parent_codes = per_group.sort_values("g")["p"].to_numpy(dtype=np.intp)
    return _Design(y, x, codes, labels, parent_codes, [str(p) for p in parents], preds)


def _label_groups(
    groups: pd.DataFrame, d: _Design, group: str, nested_in: str | None
) -> pd.DataFrame:
    head = {group: d.labels.astype(str)}
    if nested_in is not None:
        head = {nested_in: np.asarray(d.parents, dtype=object)[d.parent_codes], **head}
    out = pd.concat([pd.DataFrame(head), groups.reset_index(drop=True)], axis=1)
    out.insert(len(head), "n", d.n.astype(int))
    return out


def _intercepts(d: _Design, values: np.ndarray, ses: np.ndarray) -> dict[str, Any]:
    """Summary entries for the (parent) intercepts."""
    if len(d.parents) == 1 and d.parents[0] == "(all)":
        return {"intercept": float(values[0]), "intercept_se": float(ses[0])}
    return {
        "intercepts": dict(zip(d.parents, map(float, values))),
        "intercept_ses": dict(zip(d.parents, map(float, ses))),
    }


def _slopes(d: _Design, values: np.ndarray, ses: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    for p, v, s in zip(d.predictors, values, ses):
        out[p], out[f"{p}_se"] = float(v), float(s)
    return out


# --------------------------------------------------------------------------------------------
# complete and no pooling (ordinary least squares)


def _ols(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Coefficients, their standard errors, residual sd and residual df (QR, no inverse)."""
    q, r = np.linalg.qr(X)
    beta = linalg.solve_triangular(r, q.T @ y)
    df = len(y) - X.shape[1]
    sigma = float(np.sqrt(np.sum((y - X @ beta) ** 2) / df)) if df > 0 else np.nan
    rinv = linalg.solve_triangular(r, np.eye(X.shape[1]))
    return beta, sigma * np.sqrt(np.sum(rinv**2, axis=1)), sigma, df


def _fit_pooled(d: _Design) -> tuple[dict[str, Any], pd.DataFrame]:
    P = d.intercept_design()
    beta, se, sigma, _ = _ols(np.column_stack([P, d.x]), d.y)
    m = P.shape[1]
    summary = {**_intercepts(d, beta[:m], se[:m]), **_slopes(d, beta[m:], se[m:])}
    summary |= {"group_sd": 0.0, "residual_sd": sigma}
    a = beta[:m][d.parent_codes]
    groups = pd.DataFrame(
        {"intercept": a, "intercept_se": se[:m][d.parent_codes], "shrinkage": 1.0, "group_mean": a}
    )
    return summary, groups


def _group_sums(codes: np.ndarray, v: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups, k) column sums of ``v`` (n, k) within each group."""
    sums = np.zeros((n_groups, v.shape[1]))
    for j in range(v.shape[1]):
        sums[:, j] = np.bincount(codes, weights=v[:, j], minlength=n_groups)
    return sums


def _group_means(d: _Design, v: np.ndarray) -> np.ndarray:
    """Per-group means of the columns of ``v`` (n,) or (n, k)."""
    means = _group_sums(d.codes, v.reshape(len(v), -1), len(d.labels)) / d.n[:, None]
    return means if v.ndim == 2 else means[:, 0]


def _fit_unpooled(d: _Design) -> tuple[dict[str, Any], pd.DataFrame]:
    """``lm(y ~ x + factor(group) - 1)``: own intercepts, common slopes (Gelman & Hill 12.2)."""
    n_obs, k, J = len(d.y), d.x.shape[1], len(d.labels)
    if n_obs - J - k <= 0:
        raise DataError(
            f"no pooling needs more observations ({n_obs}) than groups plus predictors ({J + k}). "
            "Hint: use how='partial'."
        )
    xbar, ybar = _group_means(d, d.x), _group_means(d, d.y)
    xw, yw = d.x - xbar[d.codes], d.y - ybar[d.codes]
    flat = [p for j, p in enumerate(d.predictors) if np.allclose(xw[:, j], 0)]
    if flat:
        raise DataError(
            f"predictor(s) {format_examples(flat)} are constant within every group, so no pooling "
            "cannot tell them from the group intercepts. Hint: drop them or use how='partial'."
        )
    if k:
        q, r = np.linalg.qr(xw)
        beta = linalg.solve_triangular(r, q.T @ yw)
        rinv = linalg.solve_triangular(r, np.eye(k))
    else:
        beta, rinv = np.zeros(0), np.zeros((0, 0))
    sigma = float(np.sqrt(np.sum((yw - xw @ beta) ** 2) / (n_obs - J - k)))
    cov_b = sigma**2 * (rinv @ rinv.T)
    a = ybar - xbar @ beta
    a_se = np.sqrt(sigma**2 / d.n + np.einsum("jk,kl,jl->j", xbar, cov_b, xbar))
    b_se = np.sqrt(np.diag(cov_b))
    groups = pd.DataFrame({"intercept": a, "intercept_se": a_se, "shrinkage": 0.0})
    groups["group_mean"] = np.nan
    return _unpooled_summary(d, a, beta, b_se, sigma), groups


def _unpooled_summary(
    d: _Design, a: np.ndarray, beta: np.ndarray, b_se: np.ndarray, sigma: float
) -> dict[str, Any]:
    means = pd.Series(a).groupby(d.parent_codes).mean().to_numpy()
    out = {**_intercepts(d, means, np.full(len(means), np.nan)), **_slopes(d, beta, b_se)}
    return out | {"group_sd": float("inf"), "residual_sd": sigma}


def _fit_unpooled_slopes(d: _Design) -> tuple[dict[str, Any], pd.DataFrame]:
    """One regression ``y ~ 1 + x`` per group, with a common residual sd (``lm(y ~ g * x)``)."""
    x = d.x[:, 0]
    xbar, ybar = _group_means(d, x), _group_means(d, d.y)
    xc, yc = x - xbar[d.codes], d.y - ybar[d.codes]
    sxx = np.bincount(d.codes, weights=xc * xc, minlength=len(d.labels))
    sxy = np.bincount(d.codes, weights=xc * yc, minlength=len(d.labels))
    ok = sxx > 1e-12 * max(1.0, float(np.max(sxx)))
    b = np.where(ok, sxy / np.where(ok, sxx, 1.0), np.nan)
    zero_x = ~ok & (np.abs(xbar) < 1e-12)
    a = np.where(ok, ybar - np.where(ok, b, 0.0) * xbar, np.where(zero_x, ybar, np.nan))
    resid = yc - np.where(ok, b, 0.0)[d.codes] * xc
    df = len(d.y) - int(np.sum(np.where(ok, 2, 1)))
    if df <= 0:
        raise DataError(
            "no pooling with varying slopes leaves no residual degrees of freedom "
            f"({len(d.y)} observations, {len(d.labels)} groups). Hint: use how='partial'."
        )
    sigma = float(np.sqrt(np.sum(resid**2) / df))
    safe = np.where(ok, sxx, np.inf)
    a_se = np.where(ok, sigma * np.sqrt(1 / d.n + xbar**2 / safe), sigma / np.sqrt(d.n))
    a_se = np.where(np.isnan(a), np.nan, a_se)
    b_se = np.where(ok, sigma / np.sqrt(safe), np.nan)
    if not ok.all():
        p = d.predictors[0]
        warnings.warn(
            f"{int((~ok).sum())} group(s) have no variation in '{p}' (e.g. "
            f"{format_examples(d.labels[~ok], 3)}), so their '{p}' slope is NaN (and their "
            f"intercept unless '{p}' is 0 there). Partial pooling estimates every group.",
            UserWarning,
            stacklevel=3,
        )
    p = d.predictors[0]
    groups = pd.DataFrame(
        {"intercept": a, "intercept_se": a_se, p: b, f"{p}_se": b_se, f"{p}_shrinkage": 0.0}
    )
    groups["shrinkage"], groups["group_mean"] = 0.0, np.nan
    # summary: unweighted means over the groups where the estimate exists
    summary = _unpooled_summary(d, a, np.array([np.nanmean(b)]), np.array([np.nan]), sigma)
    return summary | {"slope_sd": float("inf"), "corr": float("nan")}, groups


# --------------------------------------------------------------------------------------------
# partial pooling


def _ri_reml(d: _Design) -> tuple[float, np.ndarray, np.ndarray, float, np.ndarray]:
    """REML fit of ``y = X b + a_group + e``, ``a ~ N(0, s_a^2)``, ``e ~ N(0, s^2)``.

    With ``theta = s_a^2 / s^2`` and group ``j`` of size ``n_j``, ``V_j^{-1} s^2 = I - w_j 1 1'``
    with ``w_j = theta / (1 + n_j theta)``, so every quadratic form needs only group sums. The
    profiled REML criterion ``(N - p) log s^2(theta) + sum log(1 + n_j theta) + log|X'V^{-1}X s^2|``
    is minimised over ``log theta``. Returns ``theta, beta, cov(beta), s^2, n``.
    """
    X = np.column_stack([d.intercept_design(), d.x])
    n = d.n
    sx = _group_sums(d.codes, X, len(n))
    sy = _group_sums(d.codes, d.y[:, None], len(n))[:, 0]
    xtx, xty, yty = X.T @ X, X.T @ d.y, float(d.y @ d.y)
    N, p = X.shape

    def parts(log_theta: float) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
        theta = np.exp(log_theta)
        w = theta / (1 + n * theta)
        A = xtx - (sx * w[:, None]).T @ sx
        b = xty - sx.T @ (w * sy)
        cho = linalg.cho_factor(A)
        beta = linalg.cho_solve(cho, b)
        rss = yty - float(np.sum(w * sy**2)) - float(b @ beta)
        return beta, cho, rss, np.log1p(n * theta)

    def criterion(log_theta: float) -> float:
        _, cho, rss, logdet_v = parts(log_theta)
        logdet_a = 2 * np.sum(np.log(np.diag(cho[0])))
        return (N - p) * np.log(rss / (N - p)) + float(np.sum(logdet_v)) + logdet_a

    opt = optimize.minimize_scalar(
        criterion, bounds=(-20.0, 12.0), method="bounded", options={"xatol": 1e-10}
    )
    beta, cho, rss, _ = parts(opt.x)
    s2 = rss / (N - p)
    cov = s2 * linalg.cho_solve(cho, np.eye(p))
    return float(np.exp(opt.x)), beta, cov, s2, n


def _fit_partial(d: _Design) -> tuple[dict[str, Any], pd.DataFrame]:
    theta, beta, cov, s2, n = _ri_reml(d)
    m = len(d.parents)
    se = np.sqrt(np.diag(cov))
    mu = beta[:m][d.parent_codes]
    own = _group_means(d, d.y - d.x @ beta[m:])
    shrink = 1.0 / (1.0 + n * theta)
    a = mu + (1 - shrink) * (own - mu)
    groups = pd.DataFrame(
        {
            "intercept": a,
            "intercept_se": np.sqrt(s2 * theta * shrink),
            "shrinkage": shrink,
            "group_mean": mu,
            "unpooled": own,
        }
    )
    summary = {**_intercepts(d, beta[:m], se[:m]), **_slopes(d, beta[m:], se[m:])}
    summary |= {"group_sd": float(np.sqrt(theta * s2)), "residual_sd": float(np.sqrt(s2))}
    return summary, groups


def _fit_partial_slopes(d: _Design) -> tuple[dict[str, Any], pd.DataFrame]:
    """``(1 + x | group)`` by REML with statsmodels ``MixedLM``."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    P = d.intercept_design()
    X = np.column_stack([P, d.x])
    Z = np.column_stack([np.ones(len(d.y)), d.x[:, 0]])
    res = MixedLM(d.y, X, groups=d.codes, exog_re=Z).fit(reml=True)
    m, p = P.shape[1], d.predictors[0]
    fe, fe_se = np.asarray(res.fe_params), np.asarray(res.bse_fe)
    G = np.asarray(res.cov_re)
    u = np.array([np.asarray(res.random_effects[j]) for j in range(len(d.labels))])
    cv = np.array([np.diag(np.asarray(res.random_effects_cov[j])) for j in range(len(d.labels))])
    mu = fe[:m][d.parent_codes]
    groups = pd.DataFrame(
        {
            "intercept": mu + u[:, 0],
            "intercept_se": np.sqrt(cv[:, 0]),
            "shrinkage": cv[:, 0] / G[0, 0],
            "group_mean": mu,
            p: fe[m] + u[:, 1],
            f"{p}_se": np.sqrt(cv[:, 1]),
            f"{p}_shrinkage": cv[:, 1] / G[1, 1],
        }
    )
    summary = {**_intercepts(d, fe[:m], fe_se[:m]), **_slopes(d, fe[m:], fe_se[m:])}
    summary |= {
        "group_sd": float(np.sqrt(G[0, 0])),
        "slope_sd": float(np.sqrt(G[1, 1])),
        "corr": float(G[0, 1] / np.sqrt(G[0, 0] * G[1, 1])),
        "residual_sd": float(np.sqrt(res.scale)),
    }
    return summary, groups
