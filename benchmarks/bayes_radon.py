"""Full-draw PyMC checks on Gelman & Hill's Minnesota radon data (``pooling.fit(engine="pymc")``).

For the varying-intercept and varying-slope models, non-centred and centred, prints the posterior
means beside Gelman & Hill's published ``lmer`` numbers (and the package's own REML fit, in the
same run), the largest R-hat, the smallest bulk ESS (over every parameter, county effects
included), the divergence count, sampling seconds, and whether each done-when check passes:
|posterior mean - G&H| <= 0.03, R-hat <= 1.01, bulk ESS >= 400, no divergences (non-centred).

The variance parameters' posteriors are skewed (25 of the 85 counties have no first-floor home, so
the slope sd rests on 60 counties, many with one or two first-floor homes), so their posterior
mean, median and mode are printed side by side. Gelman & Hill's figures are REML estimates: the
joint mode of the hyperparameters' restricted likelihood, i.e. of their posterior under flat
priors with the fixed effects integrated out. ``--quadrature`` computes that posterior for the
varying-slope model without MCMC: the restricted likelihood of ``(sd_a, sd_b, corr, sigma)``
in closed form (per county 2 x 2 Woodbury algebra) on a grid, marginalised numerically, under flat
priors and under the PyMC model's priors (``htsforecast._pooling_quadrature``); its joint mode
reproduces REML, its marginal means check the sampler.

The centred varying-slope model is slow (tree depth saturates in the funnel; a 2000-draw x 4-chain
run did not finish in 77 minutes on a loaded machine), so the centred runs have their own, smaller
budget (``--centred-draws``, ``--centred-chains``), reported in the table.

Usage: ``python benchmarks/bayes_radon.py [--draws 2000] [--tune 2000] [--chains 4] [--seed 17]
[--models vi,vs] [--param nc,c] [--centred-draws 500] [--centred-chains 2] [--quadrature]``.
Chains run one after the other (``cores=1``) so timings are CPU-bound and comparable.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd

GH = {  # Gelman & Hill (2007), ch. 12 (varying intercepts) and ch. 13 (varying slopes)
    "vi": {"intercept": 1.46, "floor": -0.69, "group_sd": 0.33, "residual_sd": 0.76},
    "vs": {"intercept": 1.46, "floor": -0.68, "group_sd": 0.35, "slope_sd": 0.34,
           "residual_sd": 0.75},
}  # fmt: skip
EXTRA = {"vs": ["corr"]}  # shown, not checked (G&H: -0.34)
TOL, RHAT, ESS = 0.03, 1.01, 400
SCALES = ("group_sd", "slope_sd", "corr")  # skewed posteriors: mean, median and mode shown


def run(mn: pd.DataFrame, model: str, centered: bool, args: argparse.Namespace) -> dict:
    from htsforecast import pooling

    draws = args.centred_draws if centered else args.draws
    chains = args.centred_chains if centered else args.chains
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the table reports the diagnostics
        res = pooling.fit(
            mn, "log_radon ~ floor", group="county", how="partial",
            varying_slopes=model == "vs", engine="pymc", draws=draws, tune=draws,
            chains=chains, seed=args.seed, centered=centered, sampler_kwargs={"cores": 1},
        )  # fmt: skip
    secs = time.perf_counter() - t0
    d = res.diagnostics
    row = {"model": model, "param": "centred" if centered else "non-centred",
           "draws x chains": f"{draws}x{chains}", "seconds": secs}  # fmt: skip
    for k in [*GH[model], *EXTRA.get(model, [])]:
        row[k] = res.summary[k]
    row |= {"max_rhat": d.max_r_hat, "min_ess_bulk": d.min_ess_bulk, "divergences": d.divergences}
    hyper = d.table.loc[[k for k in GH[model] if k in d.table.index]]
    row["min_ess_hyper"] = float(hyper["ess_bulk"].min())
    row["worst_ess"] = str(d.table["ess_bulk"].idxmin())
    row["means_ok"] = all(abs(res.summary[k] - v) <= TOL for k, v in GH[model].items())
    row["rhat_ok"] = d.max_r_hat <= RHAT
    row["ess_ok"] = d.min_ess_bulk >= ESS
    row["div_ok"] = d.divergences == 0
    return row, res


def point_summaries(res) -> pd.DataFrame:
    """Posterior mean, median, mode (reflected Gaussian KDE) and HDI of the skewed parameters."""
    from scipy import stats

    rows = {}
    for k in [k for k in SCALES if k in res.posterior.posterior]:
        x = res.posterior.posterior[k].to_numpy().ravel()
        lo, hi = (-1.0, 1.0) if k == "corr" else (0.0, np.inf)
        grid = np.linspace(max(lo, x.min()), min(hi, x.max()), 2001)
        refl = [x] + [2 * b - x for b in (lo, hi) if np.isfinite(b)]  # reflect at the bounds
        kde = stats.gaussian_kde(np.concatenate(refl), bw_method=0.1)
        rows[k] = {"mean": x.mean(), "median": np.median(x), "mode": grid[kde(grid).argmax()],
                   "hdi_lo": res.summary[f"{k}_hdi_lo"], "hdi_hi": res.summary[f"{k}_hdi_hi"]}  # fmt: skip
    return pd.DataFrame(rows).T


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument("--tune", type=int, default=2000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--models", default="vi,vs")
    p.add_argument("--param", default="nc,c")
    p.add_argument("--centred-draws", type=int, default=500, help="draws (= tune) of centred runs")
    p.add_argument("--centred-chains", type=int, default=2)
    p.add_argument("--quadrature", action="store_true", help="grid posterior of the vs model")
    args = p.parse_args()

    from htsforecast import pooling
    from htsforecast.datasets import load_radon_survey

    survey = load_radon_survey()
    mn = survey[survey["survey"] == "MN"]
    print(f"load average at start: {os.getloadavg()}; {args.draws} draws + {args.tune} tune x "
          f"{args.chains} chains, seed {args.seed}")  # fmt: skip
    rows = []
    for model in args.models.split(","):
        reml = pooling.fit(mn, "log_radon ~ floor", how="partial", varying_slopes=model == "vs")
        ref = {k: round(reml.summary[k], 3) for k in [*GH[model], *EXTRA.get(model, [])]}
        print(f"\n{model}: Gelman & Hill {GH[model]}\n{model}: REML (this package) {ref}")
        for par in args.param.split(","):
            row, res = run(mn, model, par == "c", args)
            rows.append(row)
            print(pd.DataFrame([row]).round(3).to_string(index=False), flush=True)
            print("posterior mean / median / mode:\n" + point_summaries(res).round(3).to_string())
        if model == "vs" and args.quadrature:
            from htsforecast._pooling_quadrature import report

            print(report(mn), flush=True)
    table = pd.DataFrame(rows)
    print("\nSummary (posterior means; checks: |mean - G&H| <= 0.03, R-hat <= 1.01, "
          "bulk ESS >= 400 over all parameters, divergences = 0)")  # fmt: skip
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.round(3).to_string(index=False))
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
