"""HalvingGridSearchCV and HalvingRandomSearchCV that train each
iteration's sknets fits at once.

scikit-learn's successive halving (``sklearn.model_selection``'s
experimental ``HalvingGridSearchCV`` and ``HalvingRandomSearchCV``; its
``enable_halving_search_cv`` import is done here, not by the user) evaluates
its candidates in one call of ``evaluate_candidates`` per iteration, on a
subsample of the rows (``resource='n_samples'``) or with the resource set
as a parameter of every candidate (``resource='max_iter'``, ...). The
search mixin of :mod:`._search` pretrains the fits of each such call as
batched networks, on the very splits scikit-learn then evaluates, so each
iteration's (candidate, fold) fits train together; everything else
(subsampling, the candidates kept, ``cv_results_``, the refit) is
scikit-learn's.
"""

from math import floor, log

from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import HalvingGridSearchCV as _SkHalvingGridSearchCV
from sklearn.model_selection import HalvingRandomSearchCV as _SkHalvingRandomSearchCV

from ._search import _BatchedSearchMixin


class _BatchedHalvingMixin(_BatchedSearchMixin):
    def _refit_candidates(self, more_results):
        """Only the last iteration's candidates can be the best (scikit-learn
        picks ``best_index_`` among them): on a GPU, only their refits train
        with their members."""
        try:
            # as scikit-learn's _run_search counts its iterations, from the
            # first iteration's candidates and the resources it has set
            n_required = 1 + floor(log(self.n_candidates_[0], self.factor))
            n_possible = 1 + floor(log(self.max_resources_ // self.min_resources_, self.factor))
            n_iterations = (
                n_required if self.aggressive_elimination else min(n_possible, n_required)
            )
            return len(self.n_candidates_) == n_iterations
        except Exception:  # a search of another shape: the refit is an ordinary fit
            return False


class HalvingGridSearchCV(_BatchedHalvingMixin, _SkHalvingGridSearchCV):
    """Search over a parameter grid with successive halving, with batched sknets fits.

    Same signature, attributes and results as scikit-learn's
    :class:`~sklearn.model_selection.HalvingGridSearchCV`, without its
    ``from sklearn.experimental import enable_halving_search_cv``. All the
    candidates are evaluated with a small amount of a resource, then the
    best ``1 / factor`` of them with ``factor`` times more, and so on: with
    ``resource='n_samples'`` (the default) the resource is the number of
    rows each fit sees, subsampled from every fold; it can also be an
    integer parameter of the estimator, such as ``'max_iter'`` (or
    ``'mlpclassifier__max_iter'`` in a pipeline), which every candidate of
    an iteration then takes.

    When the estimator is a sknets :class:`~sknets.MLPClassifier` or
    :class:`~sknets.MLPRegressor`, alone or as the last step of a
    :class:`~sklearn.pipeline.Pipeline`, the (candidate, fold) fits of each
    iteration train at once as batched networks, as in
    :class:`GridSearchCV`: in this process, in chunks on local processes
    (``n_jobs > 1``) or on a Dask cluster (see :ref:`cluster`); fits that
    cannot be batched run one by one, with one :class:`UserWarning` per
    search that names the reasons. On a GPU, the refits of the last
    iteration's candidates train with their members; on a CPU the refit is
    an ordinary fit. ``cv_results_["mean_fit_time"]`` counts each member's
    share of the batched training it was part of. A search that raises is
    left as it was.

    Parameters
    ----------
    estimator : estimator object
        The estimator to tune, implementing the scikit-learn estimator
        interface; it needs a ``score`` method unless ``scoring`` is given.
        Its fits are batched when it is a sknets estimator, alone or ending a
        Pipeline.
    param_grid : dict or list of dicts
        Parameter names (str) mapped to lists of values to try; with a list
        of such dicts, the grids spanned by each are explored.
    factor : int or float, default=3
        The proportion of candidates kept at each iteration (the best
        ``1 / factor``), and the growth of the resource from one iteration
        to the next.
    resource : 'n_samples' or str, default='n_samples'
        The resource that grows with the iterations: the number of training
        rows, or the name of an integer parameter of the estimator (such as
        ``'max_iter'``), which ``max_resources`` must then bound.
    max_resources : int or 'auto', default='auto'
        The largest amount of the resource a candidate may use in an
        iteration; ``'auto'`` (only with ``resource='n_samples'``) is the
        number of rows.
    min_resources : {'exhaust', 'smallest'} or int, default='exhaust'
        The amount of the resource of the first iteration: ``'smallest'``
        for ``2 * n_splits`` rows (times the number of classes for a
        classifier), or 1 for another resource; ``'exhaust'`` for as much
        as lets the last iteration use as much of ``max_resources`` as
        possible.
    aggressive_elimination : bool, default=False
        With too little resource to narrow the candidates down to
        ``factor`` by the last iteration, whether to repeat the first
        iteration's amount until they are few enough.
    cv : int, cross-validation generator, iterable or None, default=5
        Cross-validation splitting strategy: None for 5 folds, an int for
        that many (Stratified)KFold folds, a CV splitter, or an iterable of
        (train, test) index arrays. Its folds must be the same at every
        call of ``split`` (no shuffle, or an int ``random_state``).
    scoring : str, callable or None, default=None
        A scorer name or a callable that returns a single score; None uses
        the estimator's ``score``.
    refit : bool or callable, default=True
        Whether to refit an estimator with the best parameters of the last
        iteration on the whole data set (``best_estimator_``).
    error_score : 'raise' or numeric, default=np.nan
        Value to assign to the score if an error occurs in estimator
        fitting: ``'raise'`` raises the error, a numeric value issues a
        ``FitFailedWarning``. The refit always raises.
    return_train_score : bool, default=True
        Whether ``cv_results_`` also holds the scores on the training folds.
    random_state : int, RandomState instance or None, default=None
        Pseudo-random number generator state used to subsample the rows
        with ``resource='n_samples'``; pass an int for the same subsamples
        across calls.
    n_jobs : int or None, default=None
        Number of jobs to run in parallel: None means 1 unless in a joblib
        backend context, -1 means all processors. With more than one job,
        the batched members train in chunks on that many local processes.
    verbose : int, default=0
        Verbosity of the messages printed while fitting: the higher, the
        more. Above 0, sknets also prints, for each iteration, how many fits
        it trained batched, and a line per reason a fit was not batched.

    See Also
    --------
    HalvingRandomSearchCV : Randomized search with successive halving, with batched sknets fits.
    GridSearchCV : Exhaustive search over a parameter grid, with batched sknets fits.
    sklearn.model_selection.HalvingGridSearchCV : The scikit-learn search this one extends.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from sknets import MLPClassifier
    >>> from sknets.model_selection import HalvingGridSearchCV
    >>> X, y = load_iris(return_X_y=True)
    >>> pipe = make_pipeline(MinMaxScaler(), MLPClassifier(max_iter=20, random_state=0))
    >>> grid = {"mlpclassifier__learning_rate_init": [1e-3, 1e-2, 1e-1],
    ...         "mlpclassifier__hidden_layer_sizes": [(16,), (32,), (64,)]}
    >>> search = HalvingGridSearchCV(pipe, grid, cv=3, random_state=0).fit(X, y)
    >>> search.n_candidates_, search.n_resources_
    ([9, 3], [18, 54])
    >>> sorted(search.best_params_)
    ['mlpclassifier__hidden_layer_sizes', 'mlpclassifier__learning_rate_init']
    """


class HalvingRandomSearchCV(_BatchedHalvingMixin, _SkHalvingRandomSearchCV):
    """Randomized search with successive halving, with batched sknets fits.

    Same signature, attributes and results as scikit-learn's
    :class:`~sklearn.model_selection.HalvingRandomSearchCV`, without its
    ``from sklearn.experimental import enable_halving_search_cv``: the
    candidates are sampled from ``param_distributions``, then halved as in
    :class:`HalvingGridSearchCV`, whose fits of each iteration train at
    once as batched networks when the estimator is one of sknets' (alone or
    ending a Pipeline), in this process, on local processes (``n_jobs >
    1``) or on a Dask cluster (see :ref:`cluster`).

    Parameters
    ----------
    estimator : estimator object
        The estimator to tune, implementing the scikit-learn estimator
        interface; it needs a ``score`` method unless ``scoring`` is given.
        Its fits are batched when it is a sknets estimator, alone or ending a
        Pipeline.
    param_distributions : dict or list of dicts
        Parameter names (str) mapped to distributions to sample from (with
        an ``rvs`` method, such as scipy.stats') or to lists of values,
        sampled uniformly; with a list of such dicts, one is drawn first.
    n_candidates : 'exhaust' or int, default='exhaust'
        The number of candidates sampled for the first iteration;
        ``'exhaust'`` samples as many as let the last iteration use as much
        of ``max_resources`` as possible (``min_resources`` must then not be
        ``'exhaust'``).
    factor : int or float, default=3
        The proportion of candidates kept at each iteration (the best
        ``1 / factor``), and the growth of the resource from one iteration
        to the next.
    resource : 'n_samples' or str, default='n_samples'
        The resource that grows with the iterations: the number of training
        rows, or the name of an integer parameter of the estimator (such as
        ``'max_iter'``), which ``max_resources`` must then bound.
    max_resources : int or 'auto', default='auto'
        The largest amount of the resource a candidate may use in an
        iteration; ``'auto'`` (only with ``resource='n_samples'``) is the
        number of rows.
    min_resources : {'exhaust', 'smallest'} or int, default='smallest'
        The amount of the resource of the first iteration: ``'smallest'``
        for ``2 * n_splits`` rows (times the number of classes for a
        classifier), or 1 for another resource; ``'exhaust'`` for as much
        as lets the last iteration use as much of ``max_resources`` as
        possible.
    aggressive_elimination : bool, default=False
        With too little resource to narrow the candidates down to
        ``factor`` by the last iteration, whether to repeat the first
        iteration's amount until they are few enough.
    cv : int, cross-validation generator, iterable or None, default=5
        Cross-validation splitting strategy: None for 5 folds, an int for
        that many (Stratified)KFold folds, a CV splitter, or an iterable of
        (train, test) index arrays. Its folds must be the same at every
        call of ``split`` (no shuffle, or an int ``random_state``).
    scoring : str, callable or None, default=None
        A scorer name or a callable that returns a single score; None uses
        the estimator's ``score``.
    refit : bool or callable, default=True
        Whether to refit an estimator with the best parameters of the last
        iteration on the whole data set (``best_estimator_``).
    error_score : 'raise' or numeric, default=np.nan
        Value to assign to the score if an error occurs in estimator
        fitting: ``'raise'`` raises the error, a numeric value issues a
        ``FitFailedWarning``. The refit always raises.
    return_train_score : bool, default=True
        Whether ``cv_results_`` also holds the scores on the training folds.
    random_state : int, RandomState instance or None, default=None
        Pseudo-random number generator state used to sample the candidates
        and to subsample the rows with ``resource='n_samples'``; pass an int
        for the same candidates and subsamples across calls.
    n_jobs : int or None, default=None
        Number of jobs to run in parallel: None means 1 unless in a joblib
        backend context, -1 means all processors. With more than one job,
        the batched members train in chunks on that many local processes.
    verbose : int, default=0
        Verbosity of the messages printed while fitting: the higher, the
        more. Above 0, sknets also prints, for each iteration, how many fits
        it trained batched, and a line per reason a fit was not batched.

    See Also
    --------
    HalvingGridSearchCV : Search over a parameter grid with successive halving, with batched
        sknets fits.
    RandomizedSearchCV : Randomized search over parameters, with batched sknets fits.
    sklearn.model_selection.HalvingRandomSearchCV : The scikit-learn search this one extends.

    Examples
    --------
    The number of epochs as the resource: 9 candidates with 3 epochs, the
    best 3 of them with 9, the best with 27.

    >>> from scipy.stats import loguniform
    >>> from sklearn.datasets import load_iris
    >>> from sknets import MLPClassifier
    >>> from sknets.model_selection import HalvingRandomSearchCV
    >>> X, y = load_iris(return_X_y=True)
    >>> distributions = {"learning_rate_init": loguniform(1e-3, 1e-1),
    ...                  "alpha": loguniform(1e-5, 1e-1)}
    >>> search = HalvingRandomSearchCV(
    ...     MLPClassifier(random_state=0), distributions, n_candidates=9,
    ...     resource="max_iter", min_resources=3, max_resources=27, cv=3,
    ...     random_state=0).fit(X, y)
    >>> search.n_candidates_, search.n_resources_
    ([9, 3, 1], [3, 9, 27])
    >>> search.best_estimator_.max_iter
    27
    """
