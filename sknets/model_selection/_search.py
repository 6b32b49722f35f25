"""GridSearchCV, RandomizedSearchCV, cross_validate and cross_val_score that
train all their sknets MLP fits at once.

Each one computes its splits, trains every (candidate, split) member as one
batched network (:mod:`._batched`), then runs scikit-learn's own code, whose
fits adopt the pretrained members (:mod:`sknets.model_selection._pretrained`). Scoring,
``cv_results_``, ``refit``, ``error_score`` and everything else is therefore
scikit-learn's. Fits that cannot be batched train one after another, as in
scikit-learn; ``verbose`` says why.
"""

import numbers
import time
from collections import defaultdict

import numpy as np
from sklearn import model_selection as sk
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils import indexable
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _routing_enabled,
    get_routing_for_object,
    process_routing,
)
from sklearn.utils.metaestimators import _safe_split
from sklearn.utils.validation import _check_method_params, _num_samples

from .. import _seam
from .._engine import resolve_device
from . import _pretrained
from ._batched import train_plans, why_not_batched


def _final_step(estimator):
    """``(transformers or None, name of the last step, last step)``."""
    if isinstance(estimator, Pipeline):
        return estimator[:-1], estimator.steps[-1][0], estimator.steps[-1][1]
    return None, None, estimator


def _plan(estimator, candidates, fit_params=None):
    """``(params, estimator, reason)`` for each candidate: the estimator set
    up as scikit-learn's ``_fit_and_score`` sets it up (the parameter values
    cloned, so that estimators in a grid are never modified), and why its
    fits cannot be batched, or None."""
    plans = []
    for params in candidates:
        try:
            est = clone(estimator).set_params(**clone(params, safe=False))
        except Exception:  # scikit-learn's own fit raises it
            plans.append((params, None, "its parameters cannot be set"))
            continue
        if fit_params:
            reason = f"fit parameters {sorted(fit_params)} are not batched"
        else:
            reason = why_not_batched(_final_step(est)[2])
        plans.append((params, est, reason))
    return plans


def _print_reasons(reasons):
    for reason, count in reasons.items():
        print(f"[sknets] {count} fit(s) run one by one: {reason}")


def pretrain(estimator, candidates, X, y, splits, fit_params=None, verbose=0, pool=None):
    """Train every batchable (candidate, split) fit as batched networks.

    Returns ``pool`` (a new dict when None) with the fitted members added
    for :func:`sknets.model_selection._pretrained.take`. ``splits`` holds ``(train, test)``
    index pairs; only the training rows are used.
    """
    start = time.perf_counter()
    pool = {} if pool is None else pool
    reasons = defaultdict(int)
    prepared, members = {}, []
    for params, est, reason in _plan(estimator, candidates, fit_params):
        if reason is not None:
            reasons[reason] += len(splits)
            continue
        transformers, name, final = _final_step(est)
        prep_key = repr(
            sorted((k, repr(v)) for k, v in params.items() if not k.startswith(f"{name}__"))
        )
        for split, (train, _) in enumerate(splits):
            slot = (prep_key, split)
            if slot not in prepared:
                try:
                    X_train, y_train = _safe_split(est, X, y, train)
                    if transformers is not None:
                        X_train = clone(transformers).fit_transform(X_train, y_train)
                    prepared[slot] = (X_train, y_train)
                except Exception:  # the sequential fit raises it, as scikit-learn would
                    prepared[slot] = None
            if prepared[slot] is None:
                reasons["the fit fails on this data"] += 1
                continue
            X_train, y_train = prepared[slot]
            if final.batch_size != "auto" and final.batch_size > len(y_train):
                reasons["batch_size larger than the training set"] += 1
                continue
            try:
                plan = _seam.plan(clone(final), X_train, y_train)
            except Exception:  # the sequential fit raises it, as scikit-learn would
                reasons["the fit fails on this data"] += 1
                continue
            members.append((plan, slot, final, X_train, y_train))
    n_groups = 0
    if members:
        results, n_groups = train_plans(
            [plan for plan, *_ in members], slots=[slot for _, slot, *_ in members]
        )
        for (_, _, final, X_train, y_train), result in zip(members, results):
            _pretrained.add(pool, final, X_train, y_train, result)
    if verbose:
        if members:
            print(
                f"[sknets] trained {len(members)} fit(s) as {n_groups} batched network(s) "
                f"in {time.perf_counter() - start:.2f}s"
            )
        _print_reasons(reasons)
    return pool


class _FixedSplits:
    """Splits computed once, given to scikit-learn as its ``cv``.

    ``split`` yields the same ``(train, test)`` pairs whatever it is given,
    so that scikit-learn's fits meet the members pretrained on them, even
    for a splitter that shuffles anew at each call or can split only once.
    Its metadata requests are those of the splitter the splits came from.
    """

    def __init__(self, cv, splits):
        self.cv = cv
        self.splits = splits

    def split(self, X=None, y=None, groups=None, **params):
        yield from self.splits

    def get_n_splits(self, X=None, y=None, groups=None, **params):
        return len(self.splits)

    def get_metadata_routing(self):
        return get_routing_for_object(self.cv)

    def __repr__(self):
        return f"{type(self).__name__}({self.cv!r}, n_splits={len(self.splits)})"


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
            Parameters passed to the ``fit`` method of the estimator, the
            scorer and the CV splitter, as in scikit-learn.

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

    def _run_search(self, evaluate_candidates, *, callback_ctx=None):
        """scikit-learn's search, whose ``evaluate_candidates`` first trains
        the candidates it is given as batched networks."""
        return super()._run_search(
            self._batched_evaluation(evaluate_candidates), callback_ctx=callback_ctx
        )

    def _batched_evaluation(self, evaluate_candidates):
        """``evaluate_candidates`` (scikit-learn's), pretraining the
        batchable fits of the candidates, then evaluating them on the very
        splits the members were trained on."""

        def evaluate(candidate_params, cv=None, more_results=None, callback_ctx=None):
            candidate_params = list(candidate_params)
            splits_cv = self._pretrain(candidate_params, cv or self._checked_cv_orig)
            return evaluate_candidates(
                candidate_params,
                cv=cv if splits_cv is None else splits_cv,
                more_results=more_results,
                callback_ctx=callback_ctx,
            )

        return evaluate

    def _pretrain(self, candidates, cv):
        """Pretrain the candidates' fits on ``cv``'s splits, computed once;
        returns those splits as a cv, or None when nothing was pretrained
        (scikit-learn then runs exactly as it would alone)."""
        X, y, params, pool = self._sknets_data
        X, y = indexable(X, y)
        # the routing that scikit-learn's fit has already done without error
        routed = self._get_routed_params_for_fit(_check_method_params(X, params=params))
        fit_params = routed.estimator.fit
        plans = _plan(self.estimator, candidates, fit_params)
        reason = None
        if self.n_jobs not in (None, 1):
            reason = f"n_jobs={self.n_jobs}: the fits run in other processes"
        elif all(r is not None for *_, r in plans):
            reason = "nothing to batch"
        if reason is not None:
            if self.verbose:
                reasons = defaultdict(int)
                for *_, r in plans:
                    reasons[r or reason] += self.n_splits_
                _print_reasons(reasons)
            return None
        try:
            splits = list(cv.split(X, y, **routed.splitter.split))
        except Exception:  # scikit-learn's evaluate_candidates raises it
            return None
        fits = splits
        if self.refit and _on_cuda(self.estimator):
            # on a GPU, one more member per candidate costs next to nothing:
            # train the refit on all rows with the others
            fits = [*splits, (np.arange(_num_samples(X)), None)]
        try:
            pretrain(self.estimator, candidates, X, y, fits, fit_params, self.verbose, pool)
        except Exception as exc:  # the fits then run one by one, as in scikit-learn
            if self.verbose:
                print(f"[sknets] no fit batched: {exc!r}")
        return _FixedSplits(cv, splits)


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


class RandomizedSearchCV(_BatchedSearchMixin, sk.RandomizedSearchCV):
    """Randomized search over parameters, with batched sknets fits.

    Same signature, attributes and results as
    :class:`sklearn.model_selection.RandomizedSearchCV`; the sampled
    candidates are trained as in :class:`GridSearchCV`.

    See :class:`sklearn.model_selection.RandomizedSearchCV` for the
    parameters.
    """


def _n_splits(estimator, X, y, groups, cv):
    """How many fits a cross-validation on ``cv`` makes, for the report;
    "all" where that is not known without splitting."""
    if cv is None or isinstance(cv, numbers.Integral) or hasattr(cv, "get_n_splits"):
        try:
            cv = check_cv(cv, y, classifier=is_classifier(estimator))
            return cv.get_n_splits(X, y, groups)
        except Exception:
            pass
    return "all"


def _pretrain_folds(
    estimator, X, y, groups, scoring, cv, params, error_score, verbose, one_score=False
):
    """``(cv, pool)`` for scikit-learn's cross-validation: the splits
    computed once as scikit-learn's ``cross_validate`` computes them, and the
    members pretrained on them. Wherever scikit-learn would raise, or
    nothing is batched, ``pool`` is None and ``cv`` is what scikit-learn
    would have used, so that it runs (and raises) exactly as it would alone.
    ``one_score``: for cross_val_score, which passes ``{"score": scorer}``.
    """
    reason = why_not_batched(_final_step(estimator)[2])
    if reason is not None:
        if verbose:
            _print_reasons({reason: _n_splits(estimator, X, y, groups, cv)})
        return cv, None
    try:
        if groups is not None and _routing_enabled():
            return cv, None  # scikit-learn's error
        X, y = indexable(X, y)
        params = {} if params is None else params
        # a generator is consumed here: scikit-learn gets the checked cv
        cv = check_cv(cv, y, classifier=is_classifier(estimator))
    except Exception:  # scikit-learn raises it
        return cv, None
    try:
        if _routing_enabled():
            if one_score:
                scoring = {"score": check_scoring(estimator, scoring=scoring)}
            scorers = check_scoring(
                estimator, scoring=scoring, raise_exc=(error_score == "raise")
            )
            # as scikit-learn's cross_validate routes them
            router = (
                MetadataRouter(owner="cross_validate")
                .add(
                    splitter=cv,
                    method_mapping=MethodMapping().add(caller="fit", callee="split"),
                )
                .add(
                    estimator=estimator,
                    method_mapping=MethodMapping().add(caller="fit", callee="fit"),
                )
                .add(
                    scorer=scorers,
                    method_mapping=MethodMapping().add(caller="fit", callee="score"),
                )
            )
            routed = process_routing(router, "fit", **params)
            split_params, fit_params = routed.splitter.split, routed.estimator.fit
        else:
            split_params, fit_params = {"groups": groups}, params
        splits = list(cv.split(X, y, **split_params))
    except Exception:  # scikit-learn raises it
        return cv, None
    try:
        pool = pretrain(estimator, [{}], X, y, splits, fit_params, verbose)
    except Exception as exc:  # the fits then run one by one, as in scikit-learn
        if verbose:
            print(f"[sknets] no fit batched: {exc!r}")
        pool = None
    return _FixedSplits(cv, splits), pool or None


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
    return _defer(
        sk.cross_validate, estimator, X, y, groups=groups, scoring=scoring, cv=cv,
        n_jobs=n_jobs, verbose=verbose, params=params, error_score=error_score,
        pre_dispatch=pre_dispatch, return_train_score=return_train_score,
        return_estimator=return_estimator, return_indices=return_indices,
    )


def _defer(function, estimator, X, y, *, groups, scoring, cv, n_jobs, verbose, params,
           error_score, **rest):
    """Pretrain the folds batched, then run scikit-learn's ``function``
    (``cross_validate`` or ``cross_val_score``), whose fits adopt them."""
    one_score = function is sk.cross_val_score
    cv, pool = _pretrain_folds(
        estimator, X, y, groups, scoring, cv, params, error_score, verbose, one_score=one_score
    )
    with _pretrained.members(pool):
        return function(
            estimator, X, y, groups=groups, scoring=scoring, cv=cv,
            # the fits only adopt pretrained members: nothing to parallelise
            n_jobs=None if pool else n_jobs,
            verbose=verbose, params=params, error_score=error_score, **rest,
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
    return _defer(
        sk.cross_val_score, estimator, X, y, groups=groups, scoring=scoring, cv=cv,
        n_jobs=n_jobs, verbose=verbose, params=params, error_score=error_score,
        pre_dispatch=pre_dispatch,
    )
