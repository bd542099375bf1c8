"""Scaling-law fits: loss against parameters, ``L(N) = a * N^-alpha + c`` (Kaplan et al. 2020).

The fit is nonlinear least squares (scipy) on ``log a``, ``alpha`` and ``c`` with
``alpha >= 0`` and ``0 <= c <= min(L)`` (the irreducible loss cannot exceed the best loss
seen), started from several exponents; the best is kept. Fit quality is R^2 and the RMSE
in the loss's units, with the residual degrees of freedom (with 3 points, 3 parameters
always fit exactly, so R^2 = 1 says nothing; the report says so).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from lmlab.errors import LmlabError


@dataclass
class PowerLawFit:
    a: float
    alpha: float
    c: float
    r2: float
    rmse: float
    n_points: int

    @property
    def dof(self) -> int:
        """Residual degrees of freedom (points minus the 3 fitted parameters)."""
        return self.n_points - 3

    def predict(self, n: np.ndarray | float) -> np.ndarray:
        return self.a * np.asarray(n, dtype=float) ** -self.alpha + self.c

    def describe(self, what: str = "loss") -> str:
        """The fit in words, e.g. for the report."""
        text = (
            f"{what} = {self.a:.3g} · N^-{self.alpha:.3f} + {self.c:.3f} "
            f"(exponent α = {self.alpha:.3f}, R² = {self.r2:.3f}, RMSE {self.rmse:.3g}, "
            f"{self.n_points} sizes)"
        )
        if self.dof <= 0:
            text += "; with only 3 sizes nothing is left to test the fit, so R² says little"
        return text


def _model(log_n: np.ndarray, log_a: float, alpha: float, c: float) -> np.ndarray:
    return np.exp(log_a - alpha * log_n) + c


def fit_power_law(n_params, loss) -> PowerLawFit:
    """Fit ``loss = a * n_params^-alpha + c`` (see the module docstring)."""
    from scipy.optimize import curve_fit

    n = np.asarray(n_params, dtype=float)
    y = np.asarray(loss, dtype=float)
    ok = np.isfinite(n) & np.isfinite(y) & (n > 0)
    n, y = n[ok], y[ok]
    if len(np.unique(n)) < 3:
        raise LmlabError(
            f"a power-law fit needs at least 3 model sizes, got {len(np.unique(n))}; "
            "sweep more --sizes"
        )
    log_n = np.log(n)
    c_max = max(float(y.min()), 1e-12)
    best: tuple[float, np.ndarray] | None = None
    for alpha0 in (0.05, 0.2, 0.5, 1.0, 2.0):
        for c0 in (0.0, 0.5 * c_max, 0.95 * c_max):
            # start a from the largest loss with this exponent and floor
            log_a0 = math.log(max(float(y.max()) - c0, 1e-12)) + alpha0 * float(log_n.min())
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    p, _ = curve_fit(
                        _model,
                        log_n,
                        y,
                        p0=(log_a0, alpha0, c0),
                        bounds=([-50.0, 0.0, 0.0], [50.0, 5.0, c_max]),
                        maxfev=20_000,
                    )
            except (RuntimeError, ValueError):
                continue
            sse = float(np.sum((_model(log_n, *p) - y) ** 2))
            if best is None or sse < best[0]:
                best = (sse, p)
    if best is None:  # pragma: no cover - curve_fit failed from every start
        raise LmlabError("the power-law fit did not converge; check the losses")
    sse, (log_a, alpha, c) = best
    sst = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - sse / sst if sst > 0 else 1.0
    return PowerLawFit(math.exp(log_a), float(alpha), float(c), r2, math.sqrt(sse / len(y)), len(y))
