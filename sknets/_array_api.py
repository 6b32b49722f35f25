"""scikit-learn's array API at sknets' boundary.

With ``sklearn.set_config(array_api_dispatch=True)``, the estimators take X
in its own namespace and on its own device and give their outputs back the
same way (scikit-learn's rule: "everything follows X"):

- a torch tensor trains and predicts where it is: sknets' training data and
  forward passes take tensors directly, so X is never copied to the host
  (:func:`training_input`), and ``device='auto'`` follows X's device;
- another namespace (``array_api_strict``, CuPy) is converted to numpy once,
  and the outputs are converted back;
- targets and sample weights, small beside X, are read as numpy;
- outputs are computed as without dispatch, from the network's raw outputs,
  then moved to X's namespace and device (:func:`to_caller`); string labels
  stay numpy, as in scikit-learn's classifiers.

Without dispatch nothing here changes anything: every helper returns its
input as it is.
"""

import numpy as np
import scipy.sparse as sp
import torch
from sklearn import config_context, get_config
from sklearn.utils._array_api import _is_numpy_namespace, get_namespace_and_device, move_to

#: torch dtypes by numpy dtype, and back
_TORCH_OF = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}
_NUMPY_OF = {v: k for k, v in _TORCH_OF.items()}


def dispatching():
    """Whether scikit-learn's array API dispatch is on."""
    return bool(get_config()["array_api_dispatch"])


def namespace_of(X):
    """``(xp, device)`` of an array-API X other than numpy's under dispatch,
    else None (the numpy path, as without dispatch)."""
    if not dispatching() or sp.issparse(X) or isinstance(X, (list, tuple)):
        return None
    xp, is_array_api, device = get_namespace_and_device(X)
    if not is_array_api or _is_numpy_namespace(xp):
        return None
    return xp, device


def is_torch(space):
    return space is not None and "torch" in space[0].__name__


def training_input(X, space):
    """X as sknets reads it: a torch tensor as it is (no copy, on its
    device), another namespace as numpy (one conversion)."""
    if space is None or is_torch(space):
        return X
    return move_to(X, xp=np, device="cpu")


def host(a):
    """Targets, sample weights, ``classes=`` of any namespace, as numpy (or
    as they are when they are not array-API arrays)."""
    if a is None or namespace_of(a) is None:
        return a
    return move_to(a, xp=np, device="cpu")


def float_dtypes(X, dtypes):
    """The float dtypes validation may give X: torch's for a tensor under
    dispatch (without it, scikit-learn reads a tensor as numpy)."""
    if isinstance(X, torch.Tensor) and dispatching():
        return tuple(_TORCH_OF[np.dtype(d)] for d in dtypes)
    return dtypes


def numpy_dtype(dtype):
    """A numpy dtype for a numpy or torch dtype."""
    if isinstance(dtype, torch.dtype):
        return _NUMPY_OF[dtype]
    return np.dtype(dtype)


def space_name(space):
    """What a fit remembers of its input's namespace: plain strings (saved
    with the model), or None without dispatch."""
    if space is None:
        return None
    xp, device = space
    return xp.__name__, str(device)


def check_same_space(est, X, method):
    """scikit-learn's ValueError when ``X``'s namespace or device is not
    the one ``est`` was fitted on (under dispatch)."""
    if not dispatching():
        return
    fitted = getattr(est, "_array_space", None)
    given = space_name(namespace_of(X))
    if given == fitted:
        return
    fit_name, given_name = ("numpy" if s is None else s[0] for s in (fitted, given))
    if fit_name != given_name:
        msg = f"Array namespaces used during fit ({fit_name}) and {method} ({given_name}) differ."
    else:
        msg = f"Devices used during fit ({fitted[1]}) and {method} ({given[1]}) differ."
    raise ValueError(
        f"Inputs passed to {type(est).__name__}.{method}() must use the same namespace "
        f"and the same device as those passed to fit(). {msg}"
    )


def to_caller(result, space):
    """A numpy ``result`` in X's namespace and on X's device (strings and
    objects stay numpy)."""
    if space is None or not isinstance(result, np.ndarray) or result.dtype.kind in "OUSV":
        return result
    xp, device = space
    return move_to(result, xp=xp, device=device)


def numpy_copy(a):
    """A fitted array as numpy, whatever its namespace (for saving)."""
    if isinstance(a, np.ndarray):
        return a
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    with config_context(array_api_dispatch=True):
        return move_to(a, xp=np, device="cpu")


def restore(a, space, device):
    """A saved fitted array back in the namespace of its fit: a tensor on
    ``device`` (the loaded network's) for a fit on tensors, else numpy."""
    if space is not None and "torch" in space[0] and isinstance(a, np.ndarray):
        return torch.from_numpy(a).to(device)
    return a
