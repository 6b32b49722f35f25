"""sknets.datasets.load_fashion_mnist on small IDX files written here."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from sknets.datasets import _read_idx, load_fashion_mnist, make_motif_signals

N_TRAIN, N_TEST = 5, 3


def idx_bytes(array):
    """An IDX file (magic 0x0000TTDD, big-endian dims, big-endian data)."""
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    array = np.asarray(array)
    code = codes[array.dtype.str[1:]]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, payload):
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def make_folder(folder, *, gz=True, seed=0):
    """Write the four Fashion-MNIST files; return the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    parts = {}
    for kind, prefix, n in (("train", "train", N_TRAIN), ("test", "t10k", N_TEST)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write(folder / f"{prefix}-images-idx3-ubyte{suffix}", idx_bytes(images))
        write(folder / f"{prefix}-labels-idx1-ubyte{suffix}", idx_bytes(labels))
        parts[kind] = images, labels
    return parts


@pytest.mark.parametrize("gz", [True, False])
def test_load_train_as_bunch(tmp_path, gz):
    parts = make_folder(tmp_path, gz=gz)
    images, labels = parts["train"]
    bunch = load_fashion_mnist(tmp_path)
    assert bunch.data.shape == (N_TRAIN, 784)
    assert bunch.data.dtype == np.float32
    np.testing.assert_array_equal(bunch.data, images.reshape(N_TRAIN, 784))
    # row-major flattening: pixel (r, c) of image i is column 28 * r + c
    assert bunch.data[2, 28 * 3 + 5] == images[2, 3, 5]
    assert bunch.images.shape == (N_TRAIN, 28, 28)
    np.testing.assert_array_equal(bunch.images, images)
    assert np.shares_memory(bunch.images, bunch.data)
    assert bunch.target.dtype.kind == "i"
    np.testing.assert_array_equal(bunch.target, labels)
    assert list(bunch.target_names[[0, 9]]) == ["T-shirt/top", "Ankle boot"]
    assert len(bunch.target_names) == 10
    assert bunch.feature_names[0] == "pixel1" and bunch.feature_names[-1] == "pixel784"
    assert len(bunch.feature_names) == 784
    assert [Path(name).name for name in bunch.filenames] == [
        "train-images-idx3-ubyte" + (".gz" if gz else ""),
        "train-labels-idx1-ubyte" + (".gz" if gz else ""),
    ]
    assert "Fashion-MNIST" in bunch.DESCR


def test_kinds_and_return_X_y(tmp_path):
    parts = make_folder(tmp_path)
    X_test, y_test = load_fashion_mnist(tmp_path, kind="test", return_X_y=True)
    np.testing.assert_array_equal(X_test, parts["test"][0].reshape(N_TEST, 784))
    np.testing.assert_array_equal(y_test, parts["test"][1])

    X_all, y_all = load_fashion_mnist(str(tmp_path), kind="all", return_X_y=True)
    assert X_all.shape == (N_TRAIN + N_TEST, 784)
    # training images first, then the test images
    np.testing.assert_array_equal(X_all[:N_TRAIN], parts["train"][0].reshape(N_TRAIN, 784))
    np.testing.assert_array_equal(X_all[N_TRAIN:], X_test)
    np.testing.assert_array_equal(y_all, np.concatenate([parts["train"][1], y_test]))


@pytest.mark.parametrize("dtype", [np.uint8, np.float64, "float32"])
def test_dtype(tmp_path, dtype):
    parts = make_folder(tmp_path)
    X, _ = load_fashion_mnist(tmp_path, return_X_y=True, dtype=dtype)
    assert X.dtype == np.dtype(dtype)
    # the raw pixel values, not rescaled
    assert X.max() == parts["train"][0].max()


def test_bad_dtype(tmp_path):
    make_folder(tmp_path)
    with pytest.raises(ValueError, match="dtype must be"):
        load_fashion_mnist(tmp_path, dtype=np.int32)


def test_bad_kind(tmp_path):
    make_folder(tmp_path)
    with pytest.raises(ValueError, match="kind"):
        load_fashion_mnist(tmp_path, kind="validation")


def test_dotted_file_names(tmp_path):
    """Uncompressed files with the dotted names of some mirrors are found."""
    parts = make_folder(tmp_path, gz=False)
    for path in tmp_path.iterdir():
        path.rename(tmp_path / path.name.replace("-idx", ".idx"))
    _, y = load_fashion_mnist(tmp_path, return_X_y=True)
    np.testing.assert_array_equal(y, parts["train"][1])


def test_env_var_and_default_folder(tmp_path, monkeypatch):
    parts = make_folder(tmp_path / "fm")
    monkeypatch.setenv("SKNETS_FASHION_MNIST", str(tmp_path / "fm"))
    _, y = load_fashion_mnist(return_X_y=True)
    np.testing.assert_array_equal(y, parts["train"][1])

    # without the variable: <scikit-learn data home>/fashion-mnist
    monkeypatch.delenv("SKNETS_FASHION_MNIST")
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError, match="SKNETS_FASHION_MNIST"):
        load_fashion_mnist()
    make_folder(tmp_path / "home" / "fashion-mnist", seed=1)
    _, y_home = load_fashion_mnist(return_X_y=True)
    assert not np.array_equal(y_home, y)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_fashion_mnist(tmp_path / "nowhere")


def test_missing_file(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    # the training part does not need it
    load_fashion_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_fashion_mnist(tmp_path, kind="test")
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_fashion_mnist(tmp_path, kind="all")


def labels_file(tmp_path):
    return tmp_path / "train-labels-idx1-ubyte"


def images_file(tmp_path):
    return tmp_path / "train-images-idx3-ubyte"


@pytest.mark.parametrize(
    "target, payload, message",
    [
        # magic number: first two bytes must be zero
        (labels_file, b"\x01\x00\x08\x01" + struct.pack(">I", 5) + bytes(5), "magic"),
        # magic number: unknown element type 0x07
        (labels_file, b"\x00\x00\x07\x01" + struct.pack(">I", 5) + bytes(5), "magic"),
        # magic number: zero dimensions
        (labels_file, b"\x00\x00\x08\x00", "magic"),
        # shorter than a magic number
        (labels_file, b"\x00\x00", "only 2 bytes"),
        # header announces 3 dims but holds one
        (images_file, b"\x00\x00\x08\x03" + struct.pack(">I", 5), "truncated"),
        # body shorter than 5 x 28 x 28
        (images_file, idx_bytes(np.zeros((5, 28, 28), np.uint8))[:-1], "truncated"),
        # body longer than announced
        (labels_file, idx_bytes(np.zeros(5, np.uint8)) + b"\x00", "trailing bytes"),
        # images of the wrong size
        (images_file, idx_bytes(np.zeros((5, 27, 28), np.uint8)), r"\(n, 28, 28\)"),
        # images of the wrong type
        (images_file, idx_bytes(np.zeros((5, 28, 28), ">i4")), "uint8 images"),
        # labels with two dimensions
        (labels_file, idx_bytes(np.zeros((5, 1), np.uint8)), "1-D uint8"),
        # fewer labels than images
        (labels_file, idx_bytes(np.zeros(4, np.uint8)), "5 images but"),
        # a label out of 0..9
        (labels_file, idx_bytes(np.array([0, 1, 10, 2, 3], np.uint8)), "label 10"),
    ],
)
def test_corrupt_raw_files(tmp_path, target, payload, message):
    make_folder(tmp_path, gz=False)
    target(tmp_path).write_bytes(payload)
    with pytest.raises(ValueError, match=message):
        load_fashion_mnist(tmp_path)


def test_corrupt_gzip(tmp_path):
    make_folder(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    # not gzip at all
    path.write_bytes(idx_bytes(np.zeros((5, 28, 28), np.uint8)))
    with pytest.raises(ValueError, match="not a valid gzip file"):
        load_fashion_mnist(tmp_path)
    # a gzip stream cut short
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((5, 28, 28), np.uint8)))[:-12])
    with pytest.raises(ValueError, match="not a valid gzip file"):
        load_fashion_mnist(tmp_path)
    # a valid stream holding a corrupt IDX file is an IDX error, not a gzip one
    path.write_bytes(gzip.compress(b"\xff\xff\x08\x01"))
    with pytest.raises(ValueError, match="magic"):
        load_fashion_mnist(tmp_path)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=np.uint8).reshape(2, 3),
        np.array([-3, 0, 7], dtype=np.int8),
        np.array([[-300, 2], [5, 30000]], dtype=np.int16),
        np.array([-70000, 1, 2**30], dtype=np.int32),
        np.array([1.5, -2.25], dtype=np.float32),
        np.array([[1e300], [-1e-300]], dtype=np.float64),
    ],
)
def test_read_idx_types(tmp_path, array):
    """Every IDX element type is read big-endian into native order."""
    path = write(tmp_path / "x.idx", idx_bytes(array))
    out = _read_idx(path)
    assert out.dtype == array.dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


# -- make_motif_signals ----------------------------------------------------------


def test_make_motif_signals_places_the_scaled_motif():
    """Without noise, each signal is zero but for the motif, a two-period
    Hann-windowed sine times the amplitude, at the returned offset."""
    length, width = 30, 8
    X, amplitude, offset = make_motif_signals(50, length=length, width=width, noise=0.0,
                                              random_state=0)
    assert X.shape == (50, length) and X.dtype == np.float64
    assert amplitude.shape == offset.shape == (50,)
    assert ((0.5 <= amplitude) & (amplitude <= 2.0)).all()
    assert ((0 <= offset) & (offset <= 1)).all()
    t = np.arange(width)
    motif = np.hanning(width) * np.sin(2 * np.pi * 2 * t / width)
    starts = np.rint(offset * (length - width)).astype(int)
    for row, a, s in zip(X, amplitude, starts, strict=True):
        expected = np.zeros(length)
        expected[s : s + width] = a * motif
        np.testing.assert_allclose(row, expected, atol=1e-12)
    # offsets reach both ends over enough signals
    assert starts.min() == 0 and starts.max() == length - width


def test_make_motif_signals_is_seeded_and_leaves_global_state():
    state = np.random.get_state()[1].copy()
    a = make_motif_signals(20, random_state=3)
    b = make_motif_signals(20, random_state=3)
    c = make_motif_signals(20, random_state=4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    # a RandomState instance seeds it too, reproducibly
    d = make_motif_signals(5, random_state=np.random.RandomState(0))
    e = make_motif_signals(5, random_state=np.random.RandomState(0))
    np.testing.assert_array_equal(d[0], e[0])
    # the noise's scale
    X, _, _ = make_motif_signals(2000, length=200, width=2, noise=0.5, random_state=0)
    assert abs(X.std() - 0.5) < 0.01


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"width": 61}, "width must be at most length=60, got 61"),
        ({"n_samples": 0}, "n_samples"),
        ({"noise": -1.0}, "noise"),
        ({"width": 1}, "width"),
    ],
)
def test_make_motif_signals_rejects_bad_parameters(kwargs, error):
    with pytest.raises(ValueError, match=error):
        make_motif_signals(**kwargs)
