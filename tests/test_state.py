"""Saving and loading as plain data (sknets._state): skops with sknets'
classes only, pickle, deepcopy, models saved on a GPU, crafted files."""

import builtins
import copy
import io
import json
import pickle
import warnings
import zipfile

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from skorch.exceptions import DeviceWarning

import sknets
from sknets import ConvClassifier, ConvRegressor, MLPClassifier, MLPRegressor
from sknets._base import _BaseNet

sio = pytest.importorskip("skops.io")

FAST = {
    MLPClassifier: {"hidden_layer_sizes": (8,), "max_iter": 3},
    MLPRegressor: {"hidden_layer_sizes": (8,), "max_iter": 3},
    ConvClassifier: {"filters": (2, 3), "hidden_layer_sizes": (8,), "max_iter": 2},
    ConvRegressor: {"filters": (2, 3), "hidden_layer_sizes": (8,), "max_iter": 2},
}
ESTIMATORS = list(FAST)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(60, 16)
    y = (X[:, :4].sum(axis=1) > 2).astype(int) + (X[:, 4] > 0.5)
    return X, y


def _target(Est, y):
    return y.astype(float) if Est in (MLPRegressor, ConvRegressor) else y


def _fit(Est, data, **params):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Est(**{**FAST[Est], "random_state": 0, **params}).fit(X, _target(Est, y))


def _outputs(est, X):
    if hasattr(est, "predict_proba"):
        return est.predict_proba(X)
    return est.predict(X)


def _weights(est):
    return [p.detach().clone() for p in est.net_.module_.state_dict().values()]


def _assert_same_model(a, b):
    for p, q in zip(_weights(a), _weights(b), strict=True):
        assert torch.equal(p, q)
    state_a = a.net_.optimizer_.state_dict()
    state_b = b.net_.optimizer_.state_dict()
    assert state_a["param_groups"] == state_b["param_groups"]
    for i, st in state_a["state"].items():
        for k, v in st.items():
            other = state_b["state"][i][k]
            assert torch.equal(v, other) if torch.is_tensor(v) else v == other


def _skops(est):
    return sio.loads(sio.dumps(est), trusted=sknets.TRUSTED_TYPES)


ROUND_TRIPS = {
    "pickle": lambda est: pickle.loads(pickle.dumps(est)),
    "skops": _skops,
    "deepcopy": copy.deepcopy,
}


# -- what the state holds -------------------------------------------------------------


def _leaves(obj, path="state"):
    """Every leaf of a state, with its path."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{path}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, obj


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_the_state_is_plain_data(Est, data):
    est = _fit(Est, data, device=torch.device("cpu"))
    for path, leaf in _leaves(est.__getstate__()):
        plain = leaf is None or isinstance(leaf, (str, bool, int, float, np.ndarray))
        # scikit-learn's own helpers, which skops trusts
        sklearn_part = type(leaf).__module__.startswith("sklearn.")
        assert plain or sklearn_part, f"{path} is a {type(leaf)}"
        if isinstance(leaf, np.ndarray):
            assert leaf.dtype != object, path


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_skops_asks_to_trust_sknets_classes_only(Est, data):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_pipeline(MinMaxScaler(), Est(**FAST[Est], random_state=0))
        model.fit(X, _target(Est, y))
    blob = sio.dumps(model)
    untrusted = sio.get_untrusted_types(data=blob)
    assert untrusted == [f"{Est.__module__}.{Est.__qualname__}"]
    assert set(untrusted) <= set(sknets.TRUSTED_TYPES)
    loaded = sio.loads(blob, trusted=sknets.TRUSTED_TYPES)
    np.testing.assert_array_equal(_outputs(loaded, X), _outputs(model, X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_trusted_types_are_the_public_estimators():
    assert sorted(sknets.TRUSTED_TYPES) == sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in (ConvClassifier, ConvRegressor, MLPClassifier, MLPRegressor)
    )


def test_string_classes_and_a_random_state_instance_save_with_skops(data):
    X, y = data
    labels = np.array(["low", "mid", "high"], dtype=object)[y]
    est = MLPClassifier(**FAST[MLPClassifier], random_state=np.random.RandomState(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, labels)
    blob = sio.dumps(est)
    assert sio.get_untrusted_types(data=blob) == ["sknets._mlp.MLPClassifier"]
    loaded = sio.loads(blob, trusted=sknets.TRUSTED_TYPES)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    np.testing.assert_array_equal(loaded.classes_, est.classes_)


# -- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("how", list(ROUND_TRIPS))
@pytest.mark.parametrize("Est", ESTIMATORS)
def test_round_trip_then_partial_fit_is_bit_equal(Est, how, data):
    X, y = data
    est = _fit(Est, data)
    loaded = ROUND_TRIPS[how](est)
    assert loaded.net_ is not est.net_
    _assert_same_model(loaded, est)
    np.testing.assert_array_equal(_outputs(loaded, X), _outputs(est, X))
    est.partial_fit(X, _target(Est, y))
    loaded.partial_fit(X, _target(Est, y))
    _assert_same_model(loaded, est)
    assert loaded.loss_curve_ == est.loss_curve_
    assert len(loaded.net_.history) == len(est.net_.history) == est.n_iter_


@pytest.mark.parametrize("how", ["pickle", "skops"])
@pytest.mark.parametrize("Est", [MLPClassifier, ConvRegressor])
def test_round_trip_then_warm_start_is_bit_equal(Est, how, data):
    X, y = data
    est = _fit(Est, data, warm_start=True, early_stopping=True, validation_fraction=0.2)
    loaded = ROUND_TRIPS[how](est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, _target(Est, y))
        loaded.fit(X, _target(Est, y))
    _assert_same_model(loaded, est)
    assert loaded.validation_scores_ == est.validation_scores_
    np.testing.assert_array_equal(_outputs(loaded, X), _outputs(est, X))


@pytest.mark.parametrize("solver", ["sgd", "rmsprop", "adamw", "lbfgs"])
def test_every_solver_round_trips(solver, data):
    X, y = data
    est = _fit(MLPRegressor, data, solver=solver)
    loaded = pickle.loads(pickle.dumps(est))
    _assert_same_model(loaded, est)
    if solver != "lbfgs":
        est.partial_fit(X, y.astype(float))
        loaded.partial_fit(X, y.astype(float))
        _assert_same_model(loaded, est)


def test_the_history_round_trips(data):
    est = _fit(MLPClassifier, data, early_stopping=True, validation_fraction=0.2)
    loaded = _skops(est)
    for key in ("epoch", "train_loss", "valid_loss", "dur"):
        assert loaded.net_.history[:, key] == est.net_.history[:, key]


def test_a_torch_device_parameter_round_trips(data):
    est = _fit(MLPRegressor, data, device=torch.device("cpu"))
    loaded = _skops(est)
    assert loaded.device == torch.device("cpu")
    assert isinstance(loaded.device, torch.device)
    assert loaded._fit_dtype == np.float64


def test_unfitted_estimators_and_clones_still_round_trip(data):
    est = MLPClassifier(hidden_layer_sizes=(3, 2), alpha=0.5)
    assert _skops(est).get_params() == est.get_params()
    fitted = _fit(MLPClassifier, data)
    from sklearn.base import clone

    assert not hasattr(clone(fitted), "net_")
    assert clone(fitted).get_params() == fitted.get_params()


def test_a_model_saved_on_a_gpu_loads_on_the_cpu_with_a_warning(data):
    """What a CUDA fit saves (its device, CUDA graphs, a capturable
    optimizer), read on a machine without that device."""
    X, y = data
    est = _fit(MLPClassifier, data, solver="rmsprop")
    state = est.__getstate__()
    params = state["net_"]["params"]
    params.update(device="cuda:99", cuda_graphs=True, optimizer__capturable=True)
    for group in state["net_"]["optimizer"]["param_groups"]:
        group["capturable"] = True
    loaded = MLPClassifier.__new__(MLPClassifier)
    with pytest.warns(DeviceWarning, match="cuda:99"):
        loaded.__setstate__(state)
    assert loaded.net_.torch_device.type == "cpu"
    assert loaded.net_.cuda_graphs is False
    assert not any(g["capturable"] for g in loaded.net_.optimizer_.param_groups)
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    loaded.partial_fit(X, y)
    est.partial_fit(X, y)
    _assert_same_model(loaded, est)


def test_a_pickle_of_the_previous_release_loads(data, monkeypatch):
    """Before plain-data states, a pickle held skorch's own pickle of the net."""
    X, y = data
    est = _fit(MLPClassifier, data)
    monkeypatch.setattr(_BaseNet, "__getstate__", BaseEstimator.__getstate__)
    old = pickle.dumps(est)
    monkeypatch.undo()
    assert b"FastNet" in old
    loaded = pickle.loads(old)
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    loaded.partial_fit(X, y)
    est.partial_fit(X, y)
    _assert_same_model(loaded, est)


# -- crafted files -------------------------------------------------------------------


class _Payload:
    def __reduce__(self):
        return (exec, ("import builtins; builtins._sknets_state_pwned = True",))


@pytest.fixture
def pwned():
    builtins.__dict__.pop("_sknets_state_pwned", None)
    yield lambda: getattr(builtins, "_sknets_state_pwned", False)
    builtins.__dict__.pop("_sknets_state_pwned", None)


def _rewrite(blob, change):
    """The skops file ``blob`` with ``change(schema, files)`` applied."""
    source = zipfile.ZipFile(io.BytesIO(blob))
    files = {name: source.read(name) for name in source.namelist()}
    schema = json.loads(files.pop("schema.json"))
    change(schema, files)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        target.writestr("schema.json", json.dumps(schema))
        for name, content in files.items():
            target.writestr(name, content)
    return out.getvalue()


def _nodes(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _nodes(v)
    elif isinstance(node, list):
        for v in node:
            yield from _nodes(v)


def test_a_pickle_payload_in_place_of_an_array_does_not_run(data, pwned):
    blob = sio.dumps(_fit(MLPClassifier, data))

    def change(schema, files):
        for node in _nodes(schema):
            if node.get("__loader__") == "NdArrayNode":
                files[node["file"]] = pickle.dumps(_Payload())

    crafted = _rewrite(blob, change)
    assert sio.get_untrusted_types(data=crafted) == sio.get_untrusted_types(data=blob)
    with pytest.raises(Exception):  # noqa: B017 (what matters: nothing ran)
        sio.loads(crafted, trusted=sknets.TRUSTED_TYPES)
    assert not pwned()


def test_a_pickle_payload_in_bytes_entries_does_not_run(data, pwned):
    """Each array of the net becomes a bytes entry holding a pickle: skops
    trusts bytes, so the audit passes; loading must not unpickle them."""
    blob = sio.dumps(_fit(MLPClassifier, data))

    def change(schema, files):
        for node in _nodes(schema):
            if node.get("__loader__") == "NdArrayNode":
                files[node["file"]] = pickle.dumps(_Payload())
                node.update(__class__="bytes", __module__="builtins", __loader__="BytesNode")
                node.pop("type", None)

    crafted = _rewrite(blob, change)
    assert set(sio.get_untrusted_types(data=crafted)) <= set(sknets.TRUSTED_TYPES)
    with pytest.raises(ValueError, match="Cannot load this sknets model"):
        sio.loads(crafted, trusted=sknets.TRUSTED_TYPES)
    assert not pwned()


@pytest.mark.parametrize(
    "part, value",
    [("module", "Popen"), ("optimizer", "system"), ("criterion", "eval")],
)
def test_a_net_naming_another_class_is_refused(data, part, value):
    state = _fit(MLPClassifier, data).__getstate__()
    state["net_"]["classes"][part] = value
    with pytest.raises(ValueError, match="network description"):
        MLPClassifier.__new__(MLPClassifier).__setstate__(state)


def test_a_state_of_another_format_is_refused(data):
    state = _fit(MLPClassifier, data).__getstate__()
    state["net_"]["format"] = "sknets.net/0"
    with pytest.raises(ValueError, match="network state"):
        MLPClassifier.__new__(MLPClassifier).__setstate__(state)


def test_a_weights_file_holding_a_pickled_object_does_not_run(data, tmp_path, pwned):
    est = _fit(MLPClassifier, data)
    path = tmp_path / "weights.pt"
    torch.save({"layers.0.weight": _Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        est.load_weights(path)
    assert not pwned()

