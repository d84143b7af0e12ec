"""The plain (not debiased) entropic optimal transport value, solved by POT's Sinkhorn.

For the cost C_ij = ||x_i - y_j||^p and the regularisation eps (in units of the
cost), the entropic problem is

    OT_eps(a, b) = min_{P in U(a, b)} <P, C> + eps KL(P | a x b),

solved by log-domain Sinkhorn iterations (Cuturi 2013, "Sinkhorn Distances:
Lightspeed Computation of Optimal Transport"), and the estimator returns
OT_eps^(1/p). Both terms are non-negative and <P, C> >= W_p^p for any coupling,
so OT_eps >= W_p^p: the value overestimates W_p, and the excess (the entropic
bias) shrinks as eps tends to 0. It is not 0 between identical samples of
distinct points. The ``sinkhorn`` estimator removes that bias: the Sinkhorn
divergence S_eps = OT_eps(a, b) - (OT_eps(a, a) + OT_eps(b, b)) / 2 (Genevay,
Peyré and Cuturi 2018, "Learning Generative Models with Sinkhorn Divergences")
is 0 there. Reading the two side by side shows the bias.

Gradients follow the envelope theorem: at the optimum, dOT_eps/dC_ij = P_ij,
dOT_eps/da_i = f_i and dOT_eps/db_j = g_j, with (f, g) the dual potentials.
The plan and potentials are computed without autograd and the value is
rebuilt from them, so no graph is kept through the iterations.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from typing import Any

import ot
import torch
from torch import Tensor

from ..validation import check_positive
from .base import (
    Capabilities,
    Estimator,
    SolveResult,
    check_memory,
    default_memory_budget,
    pairwise_cost,
    root,
    uniform_weights,
    warn_caller,
)

__all__ = ["EntropicOT"]

logger = logging.getLogger(__name__)

# Dense n x m float64 matrices alive at once: C, -C / eps, one logsumexp
# temporary, the plan, and C again in the differentiable rebuild.
_MATRICES = 5


class EntropicOT(Estimator):
    """Entropic optimal transport OT_eps^(1/p), not debiased: an upper bound of W_p.

    Args:
        p: order of the ground cost ||x - y||^p, 1 or 2.
        blur: length scale of the regularisation, in the units of the samples.
            The regularisation is eps = blur^p in units of the cost, as for the
            ``sinkhorn`` estimator.
        max_iter: cap on Sinkhorn iterations (POT's ``numItermax``).
        tol: largest L1 error of the plan's marginals, sum |P 1 - a| + |P^T 1 - b|,
            for ``last_solve.converged`` to be True.
        memory_budget: bytes allowed for the dense n x m float64 matrices;
            ``None`` reads ``OTBENCH_MEMORY_BUDGET`` or uses 4 GB.

    The solve (``ot.sinkhorn`` with ``method="sinkhorn_log"``) runs in float64
    on the device of ``x``, and the value is cast to the dtype of ``x``. The
    log-domain updates add and subtract terms of size max(C) / eps, which
    float32 cannot resolve at small blur. The value is the dual objective
    <f, a> + <g, b> at the last iterate, which equals the primal
    <P, C> + eps KL(P | a x b) once the marginals hold.

    POT tests its stopping criterion every 10 iterations, on the L2 norm of
    the column-marginal error. The estimator passes ``tol / sqrt(m)``, so POT
    stops only once the L1 error is below ``tol``. The loop has no
    eps-scaling, so it needs many iterations when max(C) / eps is large, as at
    p = 2 with a small blur. A solve whose plan still misses ``tol`` after
    ``max_iter`` iterations warns with ``ConvergenceWarning`` and sets
    ``converged = False``.

    Samples that coincide give 0 (one point, or copies of one point). Distinct
    points in x = y give a positive value with finite gradients. A zero weight
    is replaced by the smallest normal float, so its gradient reads 0 where
    the true derivative is that point's dual potential.

    Example:
        >>> est = EntropicOT(p=2, blur=0.05)
        >>> float(est(torch.zeros(1, 2), torch.tensor([[3.0, 4.0]])))
        5.0
    """

    name = "sinkhorn-entropic"
    capabilities = Capabilities(orders=(1, 2), weights=True, inner_loop=True, exact=False)

    def __init__(
        self,
        p: int = 2,
        blur: float = 0.05,
        max_iter: int = 10000,
        tol: float = 1e-3,
        memory_budget: int | None = None,
    ) -> None:
        super().__init__(p)
        check_positive("blur", blur)
        check_positive("max_iter", max_iter, integer=True)
        check_positive("tol", tol)
        if memory_budget is not None:
            check_positive("memory_budget", memory_budget, integer=True)
        self.blur = float(blur)
        self.max_iter = max_iter
        self.tol = float(tol)
        self.memory_budget = memory_budget

    @property
    def eps(self) -> float:
        """Entropic regularisation blur^p, in the units of the cost."""
        return self.blur**self.p

    def config(self) -> dict[str, Any]:
        return {
            "p": self.p,
            "blur": self.blur,
            "eps": self.eps,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "memory_budget": self.memory_budget,
        }

    def _estimate(self, x: Tensor, y: Tensor, a: Tensor | None, b: Tensor | None) -> tuple[Tensor, SolveResult]:
        n, m = x.shape[0], y.shape[0]
        check_memory(self.name, n, m, _MATRICES, 8, self.memory_budget or default_memory_budget())

        start = time.perf_counter()
        x64, y64 = x.double(), y.double()
        a64 = uniform_weights(n, x64) if a is None else _without_zeros(a.double())
        b64 = uniform_weights(m, x64) if b is None else _without_zeros(b.double())
        cost = pairwise_cost(x64, y64, self.p)
        with torch.no_grad(), warnings.catch_warnings():
            # POT's own warning is replaced by ours, which names the estimator and the fix.
            warnings.filterwarnings("ignore", message="Sinkhorn did not converge")
            _, log = ot.sinkhorn(
                a64.detach(),
                b64.detach(),
                cost.detach(),
                reg=self.eps,
                method="sinkhorn_log",
                numItermax=self.max_iter,
                stopThr=self.tol / math.sqrt(m),
                log=True,
            )
            log_u, log_v = log["log_u"], log["log_v"]
            plan = torch.exp(log_u[:, None] + log_v[None, :] - cost / self.eps)
            # P = a_i b_j exp((f_i + g_j - C_ij) / eps), so f = eps (log u - log a).
            f = self.eps * (log_u - torch.log(a64))
            g = self.eps * (log_v - torch.log(b64))
        # Envelope theorem: d/dC = P, d/da = f, d/db = g, with P, f, g held fixed.
        objective = (f * a64).sum() + (g * b64).sum() + (plan * (cost - cost.detach())).sum()
        value = root(objective.clamp_min(0.0), self.p).to(x.dtype)
        seconds = time.perf_counter() - start

        # POT's log stores the index of the last iteration, counted from 0.
        iterations = int(log["niter"]) + 1
        error = float((plan.sum(1) - a64.detach()).abs().sum() + (plan.sum(0) - b64.detach()).abs().sum())
        converged = error <= self.tol
        if not converged:
            warn_caller(
                f"sinkhorn-entropic: the transport plan's marginals are off by {error:.3g} (L1) "
                f"after {iterations} iterations, above tol={self.tol:g}; the value may be "
                f"inaccurate. Raise max_iter (now {self.max_iter}) or blur (now {self.blur:.3g})"
            )
        result = SolveResult(
            value=float(value.detach()),
            iterations=iterations,
            converged=converged,
            seconds=seconds,
            marginal_error=error,
        )
        return value, result


def _without_zeros(w: Tensor) -> Tensor:
    """Replace zero weights by the smallest normal number of their dtype.

    POT takes log(w), whose derivative 1 / w at 0 turns the weight gradients
    into NaN. With the smallest normal number the value changes by less than
    round-off, and the gradient at a zero weight is 0.
    """
    # NOTE: the derivative of the value with respect to a zero weight is a dual
    # potential, not 0. The 0 only keeps the other gradients finite.
    tiny = torch.finfo(w.dtype).tiny
    return torch.where(w > 0, w, torch.full_like(w, tiny))
