"""Plain-data state of a fitted estimator: what pickle and skops see.

A fitted estimator's ``net_`` is a :class:`~sknets._engine.FastNet` holding
torch modules and an optimizer. skorch pickles those as opaque bytes that
only an unrestricted unpickler can read, so a file holding them can run code
however it is loaded. Here the net becomes plain data instead, and is rebuilt
from it on load:

- its construction parameters (strings, numbers, booleans, tuples), with the
  module and optimizer classes by name, looked up in fixed tables;
- the module's parameters and buffers, and the optimizer's state, as numpy
  arrays;
- the training history, as a list of dicts of numbers.

So ``skops.io.get_untrusted_types`` of a saved estimator lists sknets' own
public classes only (:data:`sknets.TRUSTED_TYPES`), and pickle, joblib and
:func:`copy.deepcopy` go through the same state. Loading never unpickles
anything: a crafted file can at worst fail to load.
"""

import inspect
import numbers
import warnings

import numpy as np
import torch
from skorch import NeuralNet
from skorch.exceptions import DeviceWarning

from ._engine import FastNet, WeightedLoss
from ._modules import ConvModule, MLPModule
from ._optim import LBFGS

#: The version of the layout below, checked on load.
FORMAT = "sknets.net/1"

#: The classes a net is rebuilt with, by name: nothing else can be named.
MODULES = {cls.__name__: cls for cls in (MLPModule, ConvModule)}
OPTIMIZERS = {
    cls.__name__: cls
    for cls in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop, LBFGS)
}
CRITERIA = {cls.__name__: cls for cls in (WeightedLoss,)}
_CLASS_PARAMS = {"module": MODULES, "criterion": CRITERIA, "optimizer": OPTIMIZERS}


#: FastNet's own parameters (beyond the prefixed ones, ``module__n_features``...)
_INIT = frozenset(
    name
    for cls in (FastNet, NeuralNet)
    for name in inspect.signature(cls.__init__).parameters
    if name not in ("self", "args", "kwargs")
)


def _plain(value):
    """Whether ``value`` is plain data (numbers, strings, None, tuples and
    lists of them)."""
    if value is None or isinstance(value, (str, bool, numbers.Number)):
        return not isinstance(value, np.generic)
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return False


def _number(value):
    """A Python number (or the value itself) for a history entry."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


def _array(t):
    return t.detach().cpu().numpy().copy()


def net_state(net):
    """The plain-data state of ``net``, a fitted :class:`FastNet`."""
    params = net.get_params(deep=False)
    names = {}
    for key, table in _CLASS_PARAMS.items():
        cls = params.pop(key)
        if table.get(cls.__name__) is not cls:
            raise TypeError(f"{cls!r} is not a network part that sknets can save.")
        names[key] = cls.__name__
    plain = {k: v for k, v in params.items() if (k in _INIT or "__" in k) and _plain(v)}
    optimizer = net.optimizer_.state_dict()
    return {
        "format": FORMAT,
        "classes": names,
        "params": plain,
        "module": {k: _array(v) for k, v in net.module_.state_dict().items()},
        "optimizer": {
            "state": [
                {
                    "param": int(i),
                    "values": {
                        k: _array(v) if isinstance(v, torch.Tensor) else v
                        for k, v in st.items()
                    },
                }
                for i, st in optimizer["state"].items()
            ],
            "param_groups": [dict(g) for g in optimizer["param_groups"]],
        },
        "history": [
            {k: _number(v) for k, v in row.items() if k != "batches"} for row in net.history
        ],
    }


def _device(name):
    """``name`` if that device is here, else 'cpu' with a warning."""
    device = torch.device(name)
    here = {
        "cpu": True,
        "cuda": torch.cuda.is_available()
        and (device.index is None or device.index < torch.cuda.device_count()),
        "mps": getattr(torch.backends, "mps", None) is not None
        and torch.backends.mps.is_available(),
    }.get(device.type, False)
    if here:
        return name
    warnings.warn(
        f"This model was saved on device {name!r}, which this machine does not have: "
        "its network is rebuilt on the CPU.",
        DeviceWarning,
        stacklevel=4,
    )
    return "cpu"


def _bad(what):
    return ValueError(f"Cannot load this sknets model: its {what} is not valid.")


def load_net(state):
    """A :class:`FastNet` rebuilt from :func:`net_state`'s ``state``, on the
    saved device if this machine has it, else on the CPU with a
    :class:`~skorch.exceptions.DeviceWarning`."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise _bad("network state")
    try:
        classes = {
            key: _CLASS_PARAMS[key][state["classes"][key]] for key in _CLASS_PARAMS
        }
    except (KeyError, TypeError):
        raise _bad("network description") from None
    params = dict(state["params"])
    if not all(isinstance(k, str) and _plain(v) for k, v in params.items()):
        raise _bad("network description")
    params["device"] = _device(str(params.get("device", "cpu")))
    on_cpu = torch.device(params["device"]).type == "cpu"
    if on_cpu:
        # CUDA graphs and capturable optimizers work on CUDA only; on a
        # CPU the same steps and updates are computed without them
        params["cuda_graphs"] = False
        params.pop("optimizer__capturable", None)
    net = FastNet(**classes, **params)
    net.initialize()
    module = net.module_.state_dict()
    saved = state["module"]
    if set(saved) != set(module) or not all(isinstance(v, np.ndarray) for v in saved.values()):
        raise _bad("module state")
    net.module_.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in saved.items()})
    optimizer = state["optimizer"]
    groups = [dict(g) for g in optimizer["param_groups"]]
    if on_cpu:
        for group in groups:
            if group.get("capturable"):
                group["capturable"] = False
    opt_state = {}
    for entry in optimizer["state"]:
        opt_state[int(entry["param"])] = {
            k: torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v
            for k, v in entry["values"].items()
        }
    net.optimizer_.load_state_dict({"state": opt_state, "param_groups": groups})
    for param, st in net.optimizer_.state.items():
        for key, value in st.items():
            if torch.is_tensor(value) and value.shape == param.shape:
                # the layout of the parameter (channels-last convolutions):
                # fused optimizers read the two as one flat layout
                st[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
    for row in state["history"]:
        net.history.new_epoch()
        for key, value in row.items():
            net.history.record(key, value)
    return net
