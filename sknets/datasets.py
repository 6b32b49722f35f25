"""Loaders and generators for data sets that scikit-learn does not ship.

:func:`load_fashion_mnist` reads the Fashion-MNIST images from the standard
IDX files on the local disk; it never downloads anything.
:func:`make_motif_signals` generates 1-D signals where a convolution pays
off: a motif at a random offset in noise.
"""

import gzip
import math
import os
import zlib
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from sklearn.datasets import get_data_home
from sklearn.utils import Bunch
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

__all__ = ["FASHION_MNIST_CLASSES", "load_fashion_mnist", "make_motif_signals"]

#: Element types of the IDX format, by the third byte of the magic number.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: The two files of each part of Fashion-MNIST, as in the original release.
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: The ten Fashion-MNIST classes, by label.
FASHION_MNIST_CLASSES = np.array(
    [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]
)

_IMAGE_SHAPE = (28, 28)
_ENV_VAR = "SKNETS_FASHION_MNIST"
_X_DTYPES = (np.dtype(np.uint8), np.dtype(np.float32), np.dtype(np.float64))

_DESCR = """\
.. _fashion_mnist_dataset:

Fashion-MNIST
-------------

Zalando's article images: 28x28 grayscale pictures of clothes, shoes and
bags in 10 classes, 7,000 images per class. The standard split has 60,000
training images (``kind='train'``) and 10,000 test images (``kind='test'``).

=================   ==============================
Classes                                         10
Samples total                               70,000
Dimensionality                    784 (28 x 28)
Features            integers 0-255 (0 = background)
=================   ==============================

Labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal,
6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.

Reference: Han Xiao, Kashif Rasul and Roland Vollgraf, "Fashion-MNIST: a
Novel Image Dataset for Benchmarking Machine Learning Algorithms",
arXiv:1708.07747, 2017. The data are released under the MIT license.
"""


def _read_idx(path):
    """Read one IDX file (raw, or gzip-compressed if the name ends in .gz).

    The format is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then
    ``ndim`` big-endian uint32 dimensions, then the data in C order, big
    endian. The file must hold exactly that many bytes.

    Parameters
    ----------
    path : str or path-like
        The file to read.

    Returns
    -------
    array : ndarray
        The data, in native byte order, with the shape the header gives.

    Raises
    ------
    ValueError
        If the file is not a well-formed IDX file: a bad magic number, a
        truncated header or body, trailing bytes, or a corrupt gzip stream.
    """
    path = Path(path)
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                raw = f.read()
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise ValueError(f"{path} is not a valid gzip file: {exc}") from exc
    else:
        raw = path.read_bytes()

    if len(raw) < 4:
        raise ValueError(f"{path} is not an IDX file: it has only {len(raw)} bytes.")
    zero0, zero1, type_code, ndim = raw[:4]
    if zero0 != 0 or zero1 != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"{path} is not an IDX file: bad magic number 0x{raw[:4].hex()} (expected "
            "0x0000TTDD with a known type TT and DD >= 1 dimensions)."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path} is truncated: its header announces {ndim} dimensions but the "
            "file ends inside it."
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize
    body = len(raw) - header
    if body != expected:
        what = "is truncated" if body < expected else "has trailing bytes"
        raise ValueError(
            f"{path} {what}: a {'x'.join(map(str, shape))} array of {dtype.name} needs "
            f"{expected} bytes of data after the header, the file has {body}."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find(folder, stem):
    """The gzip'd or raw file ``stem`` in ``folder``; also ``name.idxN-ubyte``."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem + ".gz", stem, dotted + ".gz", dotted):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"Fashion-MNIST file {stem}(.gz) not found in {folder}. Download the four "
        "files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from the "
        "Fashion-MNIST release into that folder."
    )


def _load_part(folder, kind):
    images_file, labels_file = (_find(folder, stem) for stem in _FILES[kind])
    images = _read_idx(images_file)
    labels = _read_idx(labels_file)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != _IMAGE_SHAPE:
        raise ValueError(
            f"{images_file} should hold uint8 images of shape (n, 28, 28), it holds "
            f"{images.dtype.name} data of shape {images.shape}."
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_file} should hold a 1-D uint8 array of labels, it holds "
            f"{labels.dtype.name} data of shape {labels.shape}."
        )
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{images_file} has {images.shape[0]} images but {labels_file} has "
            f"{labels.shape[0]} labels."
        )
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(
            f"{labels_file} has label {int(labels.max())}; Fashion-MNIST labels are 0 to "
            f"{len(FASHION_MNIST_CLASSES) - 1}."
        )
    return images, labels, [str(images_file), str(labels_file)]


def _resolve_folder(data_home):
    if data_home is None:
        data_home = os.environ.get(_ENV_VAR) or Path(get_data_home()) / "fashion-mnist"
    folder = Path(data_home).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Fashion-MNIST folder {folder} does not exist. Put the four IDX files "
            f"of Fashion-MNIST in a folder and pass it as data_home, or set the "
            f"{_ENV_VAR} environment variable to it."
        )
    return folder


@validate_params(
    {
        "data_home": [str, os.PathLike, None],
        "kind": [StrOptions({"train", "test", "all"})],
        "return_X_y": ["boolean"],
        "dtype": "no_validation",
    },
    prefer_skip_nested_validation=True,
)
def load_fashion_mnist(data_home=None, *, kind="train", return_X_y=False, dtype=np.float32):
    """Load the Fashion-MNIST images from the standard IDX files on disk.

    Reads ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each either
    gzip-compressed with a ``.gz`` suffix, as released, or uncompressed)
    from one folder. Nothing is downloaded: fetch the four files once from
    the Fashion-MNIST release, or use
    ``sklearn.datasets.fetch_openml("Fashion-MNIST")`` when online.

    =================   ==============================
    Classes                                         10
    Samples (train)                             60,000
    Samples (test)                              10,000
    Dimensionality                    784 (28 x 28)
    Features            integers 0-255 (0 = background)
    =================   ==============================

    Parameters
    ----------
    data_home : str or path-like, default=None
        The folder that holds the IDX files. None reads the environment
        variable ``SKNETS_FASHION_MNIST``, and without it the folder
        ``fashion-mnist`` in scikit-learn's data home
        (:func:`sklearn.datasets.get_data_home`, ``~/scikit_learn_data`` by
        default).
    kind : {'train', 'test', 'all'}, default='train'
        Which part to load: the 60,000 training images, the 10,000 test
        images, or all 70,000 with the training images first (the order of
        ``fetch_openml``).
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
    dtype : {np.float32, np.float64, np.uint8}, default=np.float32
        Type of ``data`` and ``images``. The pixel values stay the raw
        integers 0 to 255 whatever the type; scale them with
        :class:`~sklearn.preprocessing.MinMaxScaler` (or divide by 255).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object, with the following attributes.

        data : ndarray of shape (n_samples, 784)
            One flattened 28x28 image per row.
        target : ndarray of shape (n_samples,)
            The class of each image, an int from 0 to 9.
        images : ndarray of shape (n_samples, 28, 28)
            The same pixels as ``data``, as images (a view of ``data``).
        target_names : ndarray of shape (10,)
            The name of each class.
        feature_names : list of str
            ``'pixel1'`` to ``'pixel784'``, as in ``fetch_openml``.
        filenames : list of str
            The files read.
        DESCR : str
            A description of the data set.

    (data, target) : tuple if ``return_X_y`` is True
        The two arrays described above.

    Raises
    ------
    FileNotFoundError
        If the folder or one of the files it needs does not exist.
    ValueError
        If a file is not a well-formed IDX file of the expected shape and
        type (bad magic number, truncated or trailing data, corrupt gzip
        stream, images not 28x28 uint8, as many labels as images, labels
        0 to 9), or if ``dtype`` is not one of the three accepted types.

    See Also
    --------
    sklearn.datasets.fetch_openml : Downloads Fashion-MNIST (``'Fashion-MNIST'``)
        from OpenML.
    sklearn.datasets.load_digits : The 8x8 handwritten digits shipped with
        scikit-learn.

    Examples
    --------
    With the four files in ``~/data/fashion-mnist``:

    >>> from sknets.datasets import load_fashion_mnist
    >>> X, y = load_fashion_mnist("~/data/fashion-mnist", return_X_y=True)  # doctest: +SKIP
    >>> X.shape, y.shape  # doctest: +SKIP
    ((60000, 784), (60000,))
    >>> test = load_fashion_mnist("~/data/fashion-mnist", kind="test")  # doctest: +SKIP
    >>> test.images.shape, test.target_names[test.target[0]]  # doctest: +SKIP
    ((10000, 28, 28), 'Ankle boot')
    """
    dtype = np.dtype(dtype)
    if dtype not in _X_DTYPES:
        raise ValueError(f"dtype must be float32, float64 or uint8, got {dtype.name}.")
    folder = _resolve_folder(data_home)
    parts = [_load_part(folder, part) for part in (("train", "test") if kind == "all" else (kind,))]
    images = np.concatenate([p[0] for p in parts]).astype(dtype, copy=False)
    target = np.concatenate([p[1] for p in parts]).astype(np.int64)
    data = images.reshape(images.shape[0], -1)
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        target=target,
        images=data.reshape(-1, *_IMAGE_SHAPE),
        target_names=FASHION_MNIST_CLASSES.copy(),
        feature_names=[f"pixel{i}" for i in range(1, data.shape[1] + 1)],
        filenames=[name for p in parts for name in p[2]],
        DESCR=_DESCR,
    )


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "length": [Interval(Integral, 1, None, closed="left")],
        "width": [Interval(Integral, 2, None, closed="left")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_motif_signals(n_samples=100, *, length=60, width=16, noise=0.3, random_state=None):
    """Generate 1-D signals, each holding one motif at a random offset.

    Each signal is Gaussian noise of standard deviation ``noise`` over
    ``length`` values, plus one motif: a Hann-windowed sine of ``width``
    values and two periods (of mean zero), scaled by an amplitude drawn
    uniformly from [0.5, 2] and placed at an offset drawn uniformly from the
    ``length - width + 1`` possible ones. The targets are the amplitude and
    the offset. A fully connected network sees the motif at each offset as
    another pattern; a convolution, whose weights are shared across
    positions, sees one: a regression task for
    :class:`~sknets.ConvRegressor` (``benchmarks/conv_regressor.py``).

    Parameters
    ----------
    n_samples : int, default=100
        The number of signals.
    length : int, default=60
        The number of values of each signal.
    width : int, default=16
        The number of values of the motif, at most ``length``.
    noise : float, default=0.3
        The standard deviation of the Gaussian noise.
    random_state : int, RandomState instance or None, default=None
        Seeds the draws: an int seeds :func:`numpy.random.default_rng`, so
        that the same int gives the same signals; None draws fresh ones.

    Returns
    -------
    X : ndarray of shape (n_samples, length)
        The signals, float64.
    amplitude : ndarray of shape (n_samples,)
        The motif's amplitude in each signal, in [0.5, 2].
    offset : ndarray of shape (n_samples,)
        Where the motif starts, scaled to [0, 1] (0 at the first value, 1
        at the last possible offset; 0 when ``width == length``).

    Examples
    --------
    >>> from sknets.datasets import make_motif_signals
    >>> X, amplitude, offset = make_motif_signals(5, length=30, width=8, random_state=0)
    >>> X.shape, amplitude.shape, offset.shape
    ((5, 30), (5,), (5,))
    >>> bool(((0.5 <= amplitude) & (amplitude <= 2)).all())
    True
    """
    if width > length:
        raise ValueError(f"width must be at most length={length}, got {width}.")
    if isinstance(random_state, np.random.RandomState):
        random_state = random_state.randint(np.iinfo(np.int32).max)
    rng = np.random.default_rng(random_state)
    t = np.arange(width)
    motif = np.hanning(width) * np.sin(2 * np.pi * 2 * t / width)
    amplitude = rng.uniform(0.5, 2.0, size=n_samples)
    X = noise * rng.standard_normal((n_samples, length))
    starts = rng.integers(length - width + 1, size=n_samples)
    for i in range(n_samples):
        X[i, starts[i] : starts[i] + width] += amplitude[i] * motif
    return X, amplitude, starts / max(length - width, 1)
