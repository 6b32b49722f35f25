"""Optimizers that torch does not have: scipy's L-BFGS-B as a torch optimizer."""

import numpy as np
import scipy.optimize
import torch
from sklearn.utils.optimize import _check_optimize_result


class LBFGS(torch.optim.Optimizer):
    """scipy's L-BFGS-B over torch parameters, as scikit-learn's MLP runs it.

    ``step(closure)`` minimises the full-batch loss that ``closure`` returns
    (it must zero and fill the gradients) with
    :func:`scipy.optimize.minimize` (``method='L-BFGS-B'``, ``maxiter``,
    ``maxfun``, ``gtol=tol``), so that the iterations, the stopping rule and
    the :class:`~sklearn.exceptions.ConvergenceWarning` on ``max_iter`` or
    ``max_fun`` are scikit-learn's. The parameters are flattened to float64
    for scipy and copied back in their own dtype. The network stays a torch
    module; only the optimisation loop is scipy's. Returns the number of
    iterations, as scikit-learn's ``n_iter_``. ``lr`` is accepted, as skorch
    passes it to every optimizer, and unused: the line search sets the steps.
    """

    def __init__(self, params, lr=None, max_iter=200, max_fun=15000, tol=1e-4):
        super().__init__(params, {"max_iter": max_iter, "max_fun": max_fun, "tol": tol})

    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def _set(self, x):
        params = self._params()
        flat = torch.from_numpy(x)
        with torch.no_grad():
            start = 0
            for p in params:
                n = p.numel()
                p.copy_(flat[start : start + n].view_as(p))
                start += n

    def step(self, closure):
        params = self._params()
        group = self.param_groups[0]

        def fun(x):
            self._set(x)
            with torch.enable_grad():
                loss = closure()
            grads = [
                torch.zeros_like(p).reshape(-1) if p.grad is None else p.grad.reshape(-1)
                for p in params
            ]
            grad = torch.cat(grads).to(torch.float64).cpu().numpy()
            return float(loss), grad

        x0 = torch.cat([p.detach().reshape(-1) for p in params]).to(torch.float64).cpu().numpy()
        with np.errstate(all="ignore"):
            result = scipy.optimize.minimize(
                fun,
                x0,
                method="L-BFGS-B",
                jac=True,
                options={"maxiter": group["max_iter"], "maxfun": group["max_fun"],
                         "gtol": group["tol"]},
            )
        self._set(np.asarray(result.x, dtype=np.float64))
        return _check_optimize_result("lbfgs", result, group["max_iter"])
