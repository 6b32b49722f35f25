"""GridSearchCV, RandomizedSearchCV, cross_validate and cross_val_score that
train all their sknets MLP fits at once.

Each one computes its splits, trains every (candidate, split) member as one
batched network (:mod:`._batched`), then runs scikit-learn's own code, whose
fits adopt the pretrained members (:mod:`sknets._pretrained`). Scoring,
``cv_results_``, ``refit``, ``error_score`` and everything else is therefore
scikit-learn's. Fits that cannot be batched train one after another, as in
scikit-learn; ``verbose`` says why.
"""

import time
from collections import defaultdict

import numpy as np
from sklearn import model_selection as sk
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import ParameterGrid, ParameterSampler, check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils.metaestimators import _safe_split
from sklearn.utils.validation import _num_samples

from .. import _pretrained
from .._engine import resolve_device
from ._batched import Member, train_members, why_not_batched


def _final_step(estimator):
    """``(transformers or None, name of the last step, last step)``."""
    if isinstance(estimator, Pipeline):
        return estimator[:-1], estimator.steps[-1][0], estimator.steps[-1][1]
    return None, None, estimator


def pretrain(estimator, candidates, X, y, splits, fit_params=None, verbose=0, pool=None):
    """Train every batchable (candidate, split) fit as batched networks.

    Returns ``pool`` (a new dict when None) with the fitted members added
    for :func:`sknets._pretrained.take`. ``splits`` holds ``(train, test)``
    index pairs; only the training rows are used.
    """
    start = time.perf_counter()
    pool = {} if pool is None else pool
    reasons = defaultdict(int)
    if fit_params:
        reasons[f"fit parameters {sorted(fit_params)} are not batched"] += len(candidates)
        candidates = []
    prepared, members = {}, []
    for params in candidates:
        est = clone(estimator).set_params(**params)
        transformers, name, final = _final_step(est)
        reason = why_not_batched(final)
        if reason is not None:
            reasons[reason] += len(splits)
            continue
        prep_key = repr(
            sorted((k, repr(v)) for k, v in params.items() if not k.startswith(f"{name}__"))
        )
        for split, (train, _) in enumerate(splits):
            slot = (prep_key, split)
            if slot not in prepared:
                X_train, y_train = _safe_split(final, X, y, train)
                if transformers is not None:
                    X_train = clone(transformers).fit_transform(X_train, y_train)
                prepared[slot] = (X_train, y_train)
            X_train, y_train = prepared[slot]
            if final.batch_size != "auto" and final.batch_size > len(y_train):
                reasons["batch_size larger than the training set"] += 1
                continue
            member = clone(final)
            try:
                Xv, targets, _, seed = member._prepare_fit(X_train, y_train)
            except Exception:  # the sequential fit raises it, as scikit-learn would
                reasons["the fit fails on this data"] += 1
                continue
            members.append((Member(member, Xv, targets, seed, slot), final, X_train, y_train))
    n_groups = train_members([m for m, *_ in members]) if members else 0
    for m, final, X_train, y_train in members:
        _pretrained.add(pool, final, X_train, y_train, m.est)
    if verbose:
        print(
            f"[sknets] trained {len(members)} fit(s) as {n_groups} batched network(s) "
            f"in {time.perf_counter() - start:.2f}s"
        )
        for reason, count in reasons.items():
            print(f"[sknets] {count} fit(s) run one by one: {reason}")
    return pool


def _on_cuda(estimator):
    _, _, final = _final_step(estimator)
    return why_not_batched(final) is None and resolve_device(final.device).type == "cuda"


class _BatchedSearchMixin:
    def fit(self, X, y=None, **params):
        """Run fit with all sets of parameters, batching the sknets fits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_output)
            Target relative to X.
        **params : dict of str -> object
            Parameters passed to the ``fit`` method of the estimator, and
            ``groups`` for the splitter.

        Returns
        -------
        self : object
            Instance of fitted estimator.
        """
        pool = {}
        self._sknets_data = (X, y, params, pool)
        n_jobs = self.n_jobs
        _, _, final = _final_step(self.estimator)
        if why_not_batched(final) is None:
            # the fits only adopt pretrained members: nothing to parallelise
            self.n_jobs = None
        try:
            # the pool stays open for the refit, which may be pretrained too
            with _pretrained.members(pool):
                return super().fit(X, y, **params)
        finally:
            self.n_jobs = n_jobs
            del self._sknets_data

    def _evaluate_batched(self, evaluate_candidates, candidates):
        X, y, params, pool = self._sknets_data
        params = dict(params)
        groups = params.pop("groups", None)
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        splits = list(cv.split(X, y, groups))
        fits = splits
        if self.refit and _on_cuda(self.estimator):
            # on a GPU, one more member per candidate costs next to nothing:
            # train the refit on all rows with the others
            fits = [*splits, (np.arange(_num_samples(X)), None)]
        pretrain(self.estimator, candidates, X, y, fits, params, self.verbose, pool)
        evaluate_candidates(candidates, cv=check_cv(splits))


class GridSearchCV(_BatchedSearchMixin, sk.GridSearchCV):
    """Exhaustive search over a parameter grid, with batched sknets fits.

    Same signature, attributes and results as
    :class:`sklearn.model_selection.GridSearchCV`. When the estimator is a
    sknets :class:`~sknets.MLPClassifier` or :class:`~sknets.MLPRegressor`,
    alone or as the last step of a :class:`~sklearn.pipeline.Pipeline`,
    every (candidate, fold) fit is trained at once as one batched network on
    the estimator's device; preprocessing steps are fitted per fold as
    scikit-learn fits them. Candidates that differ in structure (depth,
    activation, solver, batch size, ...) train as separate batched groups;
    fits that cannot be batched (other estimators, ``'lbfgs'``, ``'rmsprop'``,
    ``'adamw'``, ``dropout > 0``, fit parameters such as ``sample_weight``)
    run one by one as in scikit-learn, and ``verbose > 0`` prints why. Each
    member stops on its own (``tol`` / ``n_iter_no_change``, or with
    ``early_stopping=True`` on its own validation rows, keeping its best
    weights), exactly as its separate fit would. While members are batched,
    ``n_jobs`` is not used. On a GPU the refit of every candidate is trained
    with the members; on a CPU the refit is an ordinary fit.

    See :class:`sklearn.model_selection.GridSearchCV` for the parameters.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from sknets import MLPClassifier
    >>> from sknets.model_selection import GridSearchCV
    >>> X, y = load_digits(return_X_y=True)
    >>> pipe = make_pipeline(MinMaxScaler(), MLPClassifier(max_iter=10, random_state=0))
    >>> grid = {"mlpclassifier__learning_rate_init": [1e-3, 1e-2],
    ...         "mlpclassifier__hidden_layer_sizes": [(32,), (64,)]}
    >>> search = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    >>> sorted(search.best_params_)
    ['mlpclassifier__hidden_layer_sizes', 'mlpclassifier__learning_rate_init']
    >>> bool(search.best_score_ > 0.85)
    True
    """

    def _run_search(self, evaluate_candidates):
        self._evaluate_batched(evaluate_candidates, list(ParameterGrid(self.param_grid)))


class RandomizedSearchCV(_BatchedSearchMixin, sk.RandomizedSearchCV):
    """Randomized search over parameters, with batched sknets fits.

    Same signature, attributes and results as
    :class:`sklearn.model_selection.RandomizedSearchCV`; the sampled
    candidates are trained as in :class:`GridSearchCV`.

    See :class:`sklearn.model_selection.RandomizedSearchCV` for the
    parameters.
    """

    def _run_search(self, evaluate_candidates):
        candidates = list(
            ParameterSampler(self.param_distributions, self.n_iter, random_state=self.random_state)
        )
        self._evaluate_batched(evaluate_candidates, candidates)


def _batched_splits(estimator, X, y, groups, cv, params, verbose):
    splits = list(check_cv(cv, y, classifier=is_classifier(estimator)).split(X, y, groups))
    return splits, pretrain(estimator, [{}], X, y, splits, params, verbose)


def cross_validate(
    estimator,
    X,
    y=None,
    *,
    groups=None,
    scoring=None,
    cv=None,
    n_jobs=None,
    verbose=0,
    params=None,
    pre_dispatch="2*n_jobs",
    return_train_score=False,
    return_estimator=False,
    return_indices=False,
    error_score=np.nan,
):
    """Evaluate metrics by cross-validation, training all folds at once.

    Same signature and result as :func:`sklearn.model_selection.cross_validate`.
    When ``estimator`` is a sknets MLP (or a Pipeline ending in one), the
    fits of all splits are trained as one batched network first; see
    :class:`GridSearchCV`.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.model_selection import RepeatedKFold
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from sknets import MLPRegressor
    >>> from sknets.model_selection import cross_validate
    >>> X, y = load_diabetes(return_X_y=True)
    >>> model = make_pipeline(MinMaxScaler(), MLPRegressor(learning_rate_init=0.01,
    ...                                                    max_iter=50, random_state=0))
    >>> cv = RepeatedKFold(n_splits=5, n_repeats=3, random_state=0)
    >>> result = cross_validate(model, X, y, cv=cv, scoring="neg_mean_absolute_error")
    >>> result["test_score"].shape
    (15,)
    """
    splits, pool = _batched_splits(estimator, X, y, groups, cv, params, verbose)
    with _pretrained.members(pool):
        return sk.cross_validate(
            estimator,
            X,
            y,
            groups=groups,
            scoring=scoring,
            cv=splits,
            n_jobs=None if pool else n_jobs,
            verbose=verbose,
            params=params,
            pre_dispatch=pre_dispatch,
            return_train_score=return_train_score,
            return_estimator=return_estimator,
            return_indices=return_indices,
            error_score=error_score,
        )


def cross_val_score(
    estimator,
    X,
    y=None,
    *,
    groups=None,
    scoring=None,
    cv=None,
    n_jobs=None,
    verbose=0,
    params=None,
    pre_dispatch="2*n_jobs",
    error_score=np.nan,
):
    """Evaluate a score by cross-validation, training all folds at once.

    Same signature and result as
    :func:`sklearn.model_selection.cross_val_score`; see
    :func:`cross_validate`.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import KFold
    >>> from sknets import MLPClassifier
    >>> from sknets.model_selection import cross_val_score
    >>> X, y = load_digits(return_X_y=True)
    >>> scores = cross_val_score(MLPClassifier(max_iter=10, random_state=0), X / 16, y,
    ...                          cv=KFold(5, shuffle=True, random_state=0))
    >>> scores.shape
    (5,)
    """
    # as scikit-learn's own cross_val_score: cross_validate with one scorer
    scorer = check_scoring(estimator, scoring=scoring)
    result = cross_validate(
        estimator,
        X,
        y,
        groups=groups,
        scoring={"score": scorer},
        cv=cv,
        n_jobs=n_jobs,
        verbose=verbose,
        params=params,
        pre_dispatch=pre_dispatch,
        error_score=error_score,
    )
    return result["test_score"]
