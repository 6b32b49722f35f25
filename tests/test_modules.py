"""Tests of sknets._modules: the plain PyTorch modules and the registries."""

import math
import pickle

import numpy as np
import pytest
import torch
from scipy.special import erf, expit
from torch import nn

from sknets._modules import (
    ACTIVATIONS,
    BatchNorm1d,
    BatchNorm2d,
    ConvModule,
    Dropout,
    MLPModule,
    RandomStream,
    glorot_uniform_,
    penalized_parameters,
    row_keys,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# Each activation as an independent numpy formula.
NUMPY_ACTIVATIONS = {
    "identity": lambda x: x,
    "logistic": expit,
    "sigmoid": expit,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "gelu": lambda x: 0.5 * x * (1 + erf(x / np.sqrt(2))),
    "silu": lambda x: x * expit(x),
}


def test_activation_registry_names():
    assert set(ACTIVATIONS) == {
        "identity",
        "logistic",
        "sigmoid",
        "tanh",
        "relu",
        "leaky_relu",
        "elu",
        "gelu",
        "silu",
    }
    for record in ACTIVATIONS.values():
        assert isinstance(record(), nn.Module)


@pytest.mark.parametrize("name", sorted(NUMPY_ACTIVATIONS))
def test_activation_registry_functions(name):
    x = np.linspace(-3, 3, 13)
    got = ACTIVATIONS[name]()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, NUMPY_ACTIVATIONS[name](x), rtol=1e-12, atol=1e-12)


def test_mlp_module_layer_shapes():
    module = MLPModule(n_features=5, hidden_layer_sizes=(7, 3), n_outputs=2)
    linear = [m for m in module.modules() if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in linear] == [(7, 5), (3, 7), (2, 3)]
    assert [tuple(m.bias.shape) for m in linear] == [(7,), (3,), (2,)]
    out = module(torch.zeros(4, 5))
    assert out.shape == (4, 2)


def test_mlp_module_no_hidden_layer_is_linear():
    module = MLPModule(n_features=4, hidden_layer_sizes=(), n_outputs=3)
    X = torch.randn(6, 4)
    (layer,) = module.layers
    torch.testing.assert_close(module(X), X @ layer.weight.T + layer.bias)


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "gelu"])
def test_mlp_module_forward_matches_numpy(activation):
    module = MLPModule(6, (5, 4), 3, activation=activation, seed=3).to(torch.float64)
    X = np.random.default_rng(0).normal(size=(8, 6))
    a = X
    *hidden, last = module.layers
    for layer in hidden:
        W, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
        a = NUMPY_ACTIVATIONS[activation](a @ W.T + b)
    expected = a @ last.weight.detach().numpy().T + last.bias.detach().numpy()
    got = module(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "activation, factor", [("relu", 6.0), ("tanh", 6.0), ("logistic", 2.0), ("sigmoid", 2.0)]
)
def test_mlp_module_glorot_bounds(activation, factor):
    module = MLPModule(60, (50, 40), 30, activation=activation, seed=1)
    for layer in module.layers:
        fan_out, fan_in = layer.weight.shape
        bound = math.sqrt(factor / (fan_in + fan_out))
        for param in (layer.weight, layer.bias):
            values = param.detach().abs()
            # float32 rounding may land one ulp past the float64 bound
            assert values.max() <= bound * (1 + 1e-6)
        # uniform over the whole interval: the extreme weights come close to the
        # bound (and the tighter logistic bound is actually used)
        assert layer.weight.detach().abs().max() > 0.95 * bound
        # roughly centred and spread as U(-b, b): std = b / sqrt(3)
        std = layer.weight.detach().std().item()
        assert abs(std - bound / math.sqrt(3)) < 0.1 * bound


def test_glorot_uniform_convolution_counts_receptive_field():
    conv = nn.Conv2d(3, 8, kernel_size=5)
    glorot_uniform_(conv.weight, conv.bias, "relu", torch.Generator().manual_seed(0))
    bound = math.sqrt(6.0 / (3 * 25 + 8 * 25))
    assert conv.weight.detach().abs().max() <= bound * (1 + 1e-6)
    assert conv.weight.detach().abs().max() > 0.95 * bound


def test_mlp_module_seed_reproducible():
    a = MLPModule(10, (8,), 2, seed=42)
    b = MLPModule(10, (8,), 2, seed=42)
    c = MLPModule(10, (8,), 2, seed=43)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)


def test_mlp_module_dropout_train_vs_eval():
    module = MLPModule(20, (64,), 3, dropout=0.5, seed=0)
    X = torch.rand(16, 20)
    module.train()
    assert not torch.equal(module(X), module(X))
    module.eval()
    torch.testing.assert_close(module(X), module(X), rtol=0, atol=0)
    no_dropout = MLPModule(20, (64,), 3, dropout=0.0, seed=0).eval()
    torch.testing.assert_close(module(X), no_dropout(X))


def test_penalized_parameters_are_the_weight_matrices():
    module = MLPModule(5, (4, 3), 2)
    penalized = penalized_parameters(module)
    expected = [layer.weight for layer in module.layers]
    assert len(penalized) == len(expected)
    assert all(any(p is e for e in expected) for p in penalized)


def test_penalized_parameters_skip_batch_norm():
    module = ConvModule((1, 8, 8), (4,), 3, 2, (8,), 3, batch_norm=True)
    penalized = penalized_parameters(module)
    # one convolution kernel and two dense weight matrices; no biases, no norms
    assert sorted(p.dim() for p in penalized) == [2, 2, 4]


@pytest.mark.parametrize(
    "input_shape, filters, n_flat",
    [
        # 8x8 -> pool 4x4 -> pool 2x2: 6 channels * 2 * 2
        ((1, 8, 8), (4, 6), 24),
        # length 30 -> 15 -> 7: 6 channels * 7
        ((2, 30), (4, 6), 42),
        # 8 -> 4 -> 2 -> 1, then the 1x1 map is not pooled any more
        ((1, 8, 8), (4, 4, 4, 5), 5),
    ],
)
def test_conv_module_output_shape(input_shape, filters, n_flat):
    module = ConvModule(
        input_shape,
        filters=filters,
        kernel_size=3,
        pool_size=2,
        hidden_layer_sizes=(8,),
        n_outputs=3,
    )
    assert module.n_flat == n_flat
    module.eval()
    n_in = math.prod(input_shape)
    out = module(torch.rand(5, n_in))
    assert out.shape == (5, 3)
    # unflattened samples give the same output
    assert module(torch.rand(5, *input_shape)).shape == (5, 3)
    assert module.features(torch.rand(5, *input_shape)).flatten(1).shape == (5, n_flat)


def test_conv_module_seed_reproducible():
    a = ConvModule((1, 8, 8), (4,), 3, 2, (8,), 3, seed=5)
    b = ConvModule((1, 8, 8), (4,), 3, 2, (8,), 3, seed=5)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def _shift_candidates(x, s):
    """Every translation of one sample ``x`` (C, *spatial) by offsets in
    [-s, s] per axis, edge values filling the border, keyed by offsets."""
    spatial = x.shape[1:]
    padded = np.pad(x, [(0, 0)] + [(s, s)] * len(spatial), mode="edge")
    grids = np.meshgrid(*[np.arange(-s, s + 1)] * len(spatial), indexing="ij")
    out = {}
    for offsets in zip(*(g.ravel() for g in grids)):
        window = tuple(slice(s + o, s + o + n) for o, n in zip(offsets, spatial))
        out[offsets] = padded[(slice(None), *window)]
    return out


@pytest.mark.parametrize("input_shape, s", [((2, 5, 6), 1), ((3, 9), 2)])
def test_conv_module_shift_translates_each_sample(input_shape, s):
    module = ConvModule(input_shape, (4,), 3, 2, (8,), 3, random_shift=s, seed=0)
    X = torch.rand(200, *input_shape, dtype=torch.float64)
    shifted = module.shift(X).numpy()
    seen = []
    for x, got in zip(X.numpy(), shifted):
        matches = [o for o, c in _shift_candidates(x, s).items() if np.array_equal(c, got)]
        assert matches, "not a translation of its sample"
        seen.append(matches[0])
    # every offset of [-s, s] per axis is drawn, and no shift is one of them
    ndim = len(input_shape) - 1
    assert set(seen) == set(_shift_candidates(X[0].numpy(), s))
    assert (0,) * ndim in seen


def test_conv_module_shift_only_in_training():
    kwargs = dict(filters=(4,), kernel_size=3, pool_size=2, hidden_layer_sizes=(8,), n_outputs=3)
    shifting = ConvModule((1, 8, 8), random_shift=2, seed=1, **kwargs)
    plain = ConvModule((1, 8, 8), random_shift=0, seed=1, **kwargs)
    X = torch.rand(16, 64)
    shifting.eval()
    plain.eval()
    torch.testing.assert_close(shifting(X), plain(X), rtol=0, atol=0)
    shifting.train()
    plain.train()
    assert not torch.equal(shifting(X), plain(X))


def test_conv_module_shift_own_generator():
    """The shifts come from the module's generator, seeded by ``seed`` and
    :meth:`reseed`; torch's default generator is not used."""
    X = torch.rand(64, 1, 8, 8)
    a = ConvModule((1, 8, 8), (4,), 3, 2, (8,), 3, random_shift=1, seed=3)
    b = ConvModule((1, 8, 8), (4,), 3, 2, (8,), 3, random_shift=1, seed=3)
    state = torch.random.get_rng_state()
    first = a.shift(X)
    torch.testing.assert_close(first, b.shift(X), rtol=0, atol=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    # the stream moves on, and reseed restarts it
    second = a.shift(X)
    assert not torch.equal(first, second)
    a.reseed(3)
    torch.testing.assert_close(a.shift(X), first, rtol=0, atol=0)
    a.reseed(4)
    assert not torch.equal(a.shift(X), first)


def test_conv_module_pickles_with_a_shift_generator():
    module = ConvModule((1, 8, 8), (4,), 3, 2, (8,), 3, random_shift=1, seed=3)
    X = torch.rand(32, 1, 8, 8)
    first = module.shift(X)
    clone = pickle.loads(pickle.dumps(module))
    # the clone restarts the shifts from the seed; the original is unchanged
    torch.testing.assert_close(clone.shift(X), first, rtol=0, atol=0)
    assert module.stream._generator is not None
    clone.eval()
    module.eval()
    torch.testing.assert_close(clone(X), module(X), rtol=0, atol=0)


def test_conv_module_refresh_batch_norm():
    """The running statistics become the mean and (unbiased) variance of each
    batch norm's input over all the samples given, with the current weights."""
    module = ConvModule((2, 6, 6), (3, 4), 3, 2, (8,), 3, seed=0, random_shift=1)
    module.eval()
    X = torch.rand(50, 2, 6, 6, dtype=torch.float64) * 3 + 1
    module = module.to(torch.float64)
    # the input of the first norm is the first convolution's output
    conv, norm = module.features[0], module.features[1]
    with torch.no_grad():
        z = conv(X)
    module.refresh_batch_norm([X])
    torch.testing.assert_close(norm.running_mean, z.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(norm.running_var, z.var(dim=(0, 2, 3), unbiased=True))
    # over several batches, the mean is the mean over all their samples
    module.refresh_batch_norm([X[:20], X[20:45], X[45:]])
    torch.testing.assert_close(norm.running_mean, z.mean(dim=(0, 2, 3)))
    # the second norm sees the first block's output, normalised in training
    # mode: with the whole data in one batch, the eval-mode output up to the
    # biased (training) against unbiased (eval) variance, 1 / 1800 apart
    module.refresh_batch_norm([X])
    second = module.features[5]
    assert isinstance(second, nn.BatchNorm2d)
    with torch.no_grad():
        h = module.features[:5](X)
    torch.testing.assert_close(second.running_mean, h.mean(dim=(0, 2, 3)), rtol=2e-3, atol=0)
    # mode and momenta are restored; nothing else changed
    assert not module.training
    assert norm.momentum == 0.1 and second.momentum == 0.1


def test_conv_module_refresh_batch_norm_without_norms():
    module = ConvModule((1, 8, 8), (4,), 3, 2, (8,), 3, batch_norm=False)
    state = {k: v.clone() for k, v in module.state_dict().items()}
    module.refresh_batch_norm([torch.rand(10, 64)])
    for k, v in module.state_dict().items():
        assert torch.equal(v, state[k])


# -- keyed dropout and weighted batch norm -----------------------------------------


def test_row_keys_follow_the_values_not_the_position():
    X = torch.rand(50, 7, dtype=torch.float64)
    keys = row_keys(X)
    assert keys.dtype == torch.int64 and keys.shape == (50,)
    assert bool(((keys >= 0) & (keys < 2**32)).all())
    # distinct rows, distinct keys (50 random 32-bit keys collide with
    # probability about 3e-7)
    assert len(set(keys.tolist())) == 50
    perm = torch.randperm(50)
    assert torch.equal(row_keys(X[perm]), keys[perm])
    # inside another batch, with duplicates
    both = torch.cat([X[:5], X[:5], torch.rand(3, 7, dtype=torch.float64)])
    assert torch.equal(row_keys(both)[:10], keys[:5].repeat(2))
    # one changed bit changes the key; float32 rows work too
    Y = X.clone()
    Y[0, 3] = torch.nextafter(Y[0, 3], torch.tensor(2.0, dtype=torch.float64))
    assert row_keys(Y)[0] != keys[0]
    assert row_keys(X.float()).shape == (50,)


def test_keyed_dropout_masks():
    """Masks are keyed by the sample: equal rows, equal masks, whatever their
    batch; the keep rate is ``1 - p``; a new pass draws new masks; no global
    random state is used."""
    stream = RandomStream(3)
    drop = Dropout(0.3, stream, site=1).train()
    X = torch.rand(400, 64, dtype=torch.float64) + 1
    state = torch.random.get_rng_state()
    out = drop(X)
    assert torch.equal(torch.random.get_rng_state(), state)
    kept = out != 0
    # about 70 % kept (25,600 draws: 4 standard deviations is 1.2 %)
    assert abs(float(kept.double().mean()) - 0.7) < 0.012
    torch.testing.assert_close(out[kept], X[kept] / 0.7)
    # another batch order or make-up, the same per-row masks
    perm = torch.randperm(400)
    assert torch.equal(drop(X[perm]), out[perm])
    assert torch.equal(drop(torch.cat([X[:3], X[:3]])), out[:3].repeat(2, 1))
    # each position of a row draws on its own: masks of the columns differ
    assert not torch.equal(kept[:, 0], kept[:, 1])
    # another pass, site or seed: other masks; reseed restarts
    stream.advance()
    assert not torch.equal(drop(X) != 0, kept)
    assert not torch.equal(Dropout(0.3, RandomStream(3), site=2).train()(X) != 0, kept)
    assert not torch.equal(Dropout(0.3, RandomStream(4), site=1).train()(X) != 0, kept)
    stream.reseed(3)
    assert torch.equal(drop(X), out)
    # off in evaluation
    assert torch.equal(drop.eval()(X), X)


def test_mlp_module_dropout_keyed_by_sample():
    """A repeated input row gets the same dropout mask as its original."""
    module = MLPModule(6, (32, 32), 2, dropout=0.5, seed=1).train()
    X = torch.rand(10, 6)
    out = module(torch.cat([X, X[:4]]))
    torch.testing.assert_close(out[10:], out[:4], rtol=0, atol=0)
    assert not torch.equal(out, module.eval()(torch.cat([X, X[:4]])))


@pytest.mark.parametrize("norm, shape", [(BatchNorm1d, (5, 3, 7)), (BatchNorm2d, (5, 3, 4, 4))])
def test_weighted_batch_norm_equals_repeated_rows(norm, shape):
    """In training, a sample of weight k counts as k copies (0: not at all),
    for the output and for the running statistics; without weights it is
    torch's batch norm."""
    X = torch.randn(*shape, dtype=torch.float64)
    w = torch.tensor([2.0, 0.0, 1.0, 3.0, 1.0], dtype=torch.float64)
    repeated = X.repeat_interleave(w.long(), dim=0)
    a, b, plain = (norm(3).double().train() for _ in range(3))
    with torch.no_grad():
        for m in (a, b, plain):
            m.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(0))
            m.bias.uniform_(-1, 1, generator=torch.Generator().manual_seed(1))
    out = a(X, w)
    ref = b(repeated)
    keep = w.long() > 0
    torch.testing.assert_close(out[keep].repeat_interleave(w[keep].long(), 0), ref)
    torch.testing.assert_close(a.running_mean, b.running_mean)
    torch.testing.assert_close(a.running_var, b.running_var)
    assert int(a.num_batches_tracked) == 1
    # no weights: exactly torch's
    torch_norm = getattr(nn, norm.__name__)(3).double().train()
    torch_norm.load_state_dict(plain.state_dict())
    torch.testing.assert_close(plain(X), torch_norm(X), rtol=0, atol=0)
    # gradients flow through the weighted statistics
    X.requires_grad_(True)
    norm(3).double().train()(X, w).square().sum().backward()
    assert X.grad is not None and bool(torch.isfinite(X.grad).all())


def test_conv_module_weighted_training_equals_repeated_rows():
    """One training forward of a conv module with dropout and batch norm:
    weighted rows give the outputs of the repeated rows."""
    X = torch.rand(6, 1, 8, 8, dtype=torch.float64)
    w = torch.tensor([1.0, 2.0, 0.0, 1.0, 3.0, 1.0], dtype=torch.float64)
    repeated = X.repeat_interleave(w.long(), dim=0)
    kwargs = dict(dropout=0.5, conv_dropout=0.25, seed=2)
    a = ConvModule((1, 8, 8), (4, 6), 3, 2, (8,), 3, **kwargs).double().train()
    b = ConvModule((1, 8, 8), (4, 6), 3, 2, (8,), 3, **kwargs).double().train()
    out = a(X, sample_weight=w)
    ref = b(repeated)
    keep = w.long() > 0
    torch.testing.assert_close(out[keep].repeat_interleave(w[keep].long(), 0), ref)


def test_penalized_parameters_by_layer_type():
    """The penalty is chosen by layer type: a recurrent layer's weight_ih /
    weight_hh are penalised (their names do not end in 'weight'), its biases
    are not; a module can declare its own."""

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(3, 4, num_layers=2)
            self.norm = nn.LayerNorm(4)
            self.out = nn.Linear(4, 1)

    module = Recurrent()
    names = {id(p): n for n, p in module.named_parameters()}
    got = sorted(names[id(p)] for p in penalized_parameters(module))
    assert got == [
        "out.weight",
        "rnn.weight_hh_l0",
        "rnn.weight_hh_l1",
        "rnn.weight_ih_l0",
        "rnn.weight_ih_l1",
    ]

    class Declared(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))
            self.inner = nn.Linear(3, 3)

        def penalized_parameters(self):
            return [self.scale]

    outer = nn.Sequential(Declared(), nn.Linear(3, 2))
    got = penalized_parameters(outer)
    assert len(got) == 2
    assert got[0] is outer[0].scale and got[1] is outer[1].weight
