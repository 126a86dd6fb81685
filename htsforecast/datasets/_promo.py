"""A simulated retail panel whose sales are driven by known promotions, prices and holidays.

Used by the exogenous-regressor tests, ``benchmarks/exog_recovery.py`` and the notebook
``notebooks/exogenous_and_holidays.ipynb``: the true effects are known, so a model that uses the
regressors should recover them and beat the same model without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["SimulatedPromotions", "simulate_promotions"]

_STATES = ("CA", "TX", "NY", "FL", "WA", "IL")


@dataclass(frozen=True, eq=False)
class SimulatedPromotions:
    """Output of :func:`simulate_promotions`.

    Attributes
    ----------
    data : DataFrame
        Bottom level: ``state, store, ds, y, promo, price`` (history and future periods).
    temperature : DataFrame
        State-level covariate ``state, ds, temperature`` (for a ``LevelCovariate``).
    formula, freq : str
        ``"state / store"`` and ``"W-SUN"``.
    effects : dict
        The true coefficients: ``promo``, ``price``, ``holiday``, ``temperature``.
    """

    data: pd.DataFrame
    temperature: pd.DataFrame
    formula: str = "state / store"
    freq: str = "W-SUN"
    effects: dict[str, float] = field(default_factory=dict)


def simulate_promotions(
    n_states: int = 2,
    stores_per_state: int = 2,
    n_weeks: int = 117,
    start: str = "2021-10-03",
    noise: float = 4.0,
    seed: int = 0,
) -> SimulatedPromotions:
    """Weekly store sales = level + yearly season + promotion + price + holiday + weather + noise.

    Each store runs a promotion in a random 20 % of weeks (+40 units), has a price around 10
    (-3 units per unit of price above 10), sells +30 units in weeks with a holiday of its state
    (``holidays`` package, US subdivisions ``CA, TX, NY, FL, WA, IL``) and +0.5 units per degree
    of its state's temperature; AR(1) noise with standard deviation ``noise``.
    """
    from htsforecast.calendar import CountryHolidays

    rng = np.random.default_rng(seed)
    ds = pd.date_range(start, periods=n_weeks, freq="W-SUN")
    t = np.arange(n_weeks)
    cal = CountryHolidays("US", subdivision_col="state")
    effects = {"promo": 40.0, "price": -3.0, "holiday": 30.0, "temperature": 0.5}
    rows, temps = [], []
    for state in _STATES[:n_states]:
        holiday = cal.indicator(ds, state)
        temp = 15 + 10 * np.sin(2 * np.pi * (t - 20) / 52.18) + rng.normal(0, 2, n_weeks)
        temps.append(pd.DataFrame({"state": state, "ds": ds, "temperature": temp}))
        for k in range(stores_per_state):
            promo = (rng.random(n_weeks) < 0.2).astype(float)
            price = 10 + rng.normal(0, 1, n_weeks)
            ar = np.zeros(n_weeks)
            for i in range(1, n_weeks):
                ar[i] = 0.5 * ar[i - 1] + rng.normal(0, noise * np.sqrt(0.75))
            level = rng.uniform(80, 160)
            y = (level + 8 * np.sin(2 * np.pi * t / 52.18) + effects["promo"] * promo
                 + effects["price"] * (price - 10) + effects["holiday"] * holiday
                 + effects["temperature"] * temp + ar)  # fmt: skip
            rows.append(pd.DataFrame({"state": state, "store": f"{state}-{k + 1}", "ds": ds,
                                      "y": y, "promo": promo, "price": price}))  # fmt: skip
    return SimulatedPromotions(
        data=pd.concat(rows, ignore_index=True),
        temperature=pd.concat(temps, ignore_index=True),
        effects=effects,
    )
