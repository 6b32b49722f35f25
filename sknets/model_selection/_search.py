"""GridSearchCV, RandomizedSearchCV, cross_validate and cross_val_score that
train all their sknets fits at once.

Each one computes its splits, trains every (candidate, split) member as one
batched network (:mod:`._batched`), in this process, on local joblib
workers or on a Dask cluster (:mod:`._distributed`), then runs
scikit-learn's own code in this process, whose fits adopt the pretrained
members (:mod:`sknets.model_selection._pretrained`). Scoring,
``cv_results_``, ``refit``, ``error_score`` and everything else is
therefore scikit-learn's. Fits that cannot be batched train one by one, as
in scikit-learn, and one :class:`UserWarning` per search says why.
"""

import contextlib
import contextvars
import numbers
import time
import warnings

import joblib
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

from .._engine import resolve_device
from . import _pretrained
from ._batched import BATCHABLE, why_not_batched
from ._distributed import ClusterError, Fit, Place, find_place, train_members


def _final_step(estimator):
    """``(transformers or None, name of the last step, last step)``."""
    if isinstance(estimator, Pipeline):
        return estimator[:-1], estimator.steps[-1][0], estimator.steps[-1][1]
    return None, None, estimator


def _is_sknets(estimator):
    """Whether ``estimator`` is one of sknets' own (whose fits a user may
    expect to be batched)."""
    return estimator is not None and type(estimator).__module__.split(".")[0] == "sknets"


def _plan(estimator, candidates, fit_params=None):
    """``(params, estimator, reason)`` for each candidate: the estimator set
    up as scikit-learn's ``_fit_and_score`` sets it up (the parameter values
    cloned, so that estimators in a grid are never modified), and why its
    fits cannot be batched, or None. An estimator that no parameter can
    make batchable (neither a Pipeline nor a batchable class) is left
    alone: scikit-learn's own fits are then the only calls it gets."""
    if not isinstance(estimator, Pipeline) and type(estimator) not in BATCHABLE:
        reason = why_not_batched(estimator)
        return [(params, estimator, reason) for params in candidates]
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


def _fits(count):
    return "all fit(s)" if count is None else f"{count} fit(s)"


def _plus(a, b):
    """Fit counts added; None (all fits, how many unknown) absorbs."""
    return None if a is None or b is None else a + b


def _print_reasons(reasons):
    for reason, (count, _) in reasons.items():
        if count != 0:
            print(f"[sknets] {_fits(count)} run one by one: {reason}")


def _add_reason(reasons, reason, count, estimator):
    """Count ``count`` fits (None: all) of (the final step of) ``estimator``
    that are not batched for ``reason``."""
    fits, sknets = reasons.get(reason, (0, False))
    final = None if estimator is None else _final_step(estimator)[2]
    reasons[reason] = (_plus(fits, count), sknets or _is_sknets(final))


class _Run:
    """What one search or cross-validation gathers while it runs.

    ``place``: where the members train; ``here``: whether scikit-learn's
    fits run in this process (they must, to adopt the members); ``reasons``:
    ``{reason: (fits, whether a sknets estimator's)}`` of the fits not
    batched; ``shares``: the seconds to add to each of scikit-learn's fit
    times, in its order of (candidate, split); ``refits``: the refit
    members, by candidate.
    """

    def __init__(self, place=None, here=True):
        self.place = Place() if place is None else place
        self.here = here
        self.reasons = {}
        self.n_fits = 0
        self.n_candidates = 0
        self.shares = []
        self.refits = {}

    def add(self, reasons):
        for reason, (count, sknets) in reasons.items():
            fits, flag = self.reasons.get(reason, (0, False))
            self.reasons[reason] = (_plus(fits, count), flag or sknets)

    def warn(self, stacklevel):
        """One :class:`UserWarning` for the fits of sknets estimators that
        trained one by one (scikit-learn's own estimators are never batched,
        and get none)."""
        ours = {reason: count for reason, (count, sknets) in self.reasons.items()
                if sknets and count != 0}
        if not ours:
            return
        where = (
            "in this process" if self.here or not self.place.elsewhere
            else f"as scikit-learn's tasks on {self.place}"
        )
        detail = "; ".join(f"{reason} ({_fits(count)})" for reason, count in ours.items())
        n = 0
        for count in ours.values():
            n = _plus(n, count)
        if n is None or n == self.n_fits:
            fits = "all fits are"
        elif self.n_fits is None:
            fits = f"{n} fit(s) are"
        else:
            fits = f"{n} of {self.n_fits} fits are"
        warnings.warn(
            f"sknets.model_selection: {fits} trained one by one {where}, not as batched "
            f"networks: {detail}.",
            UserWarning,
            stacklevel=stacklevel + 1,
        )


def _evaluation_here(run):
    """The context of scikit-learn's own fitting and scoring: in this
    process when its fits adopt pretrained members (a parallel joblib
    backend would send them to workers that do not hold the members)."""
    if run.here and run.place.elsewhere:
        # parallel_config: joblib >= 1.3
        config = getattr(joblib, "parallel_config", joblib.parallel_backend)
        return config(backend="sequential")
    return contextlib.nullcontext()


def pretrain(
    estimator, candidates, X, y, splits, fit_params=None, verbose=0, pool=None, run=None,
    refit=False,
):
    """Train every batchable (candidate, split) fit as batched networks.

    Returns ``(pool, shares)``: ``pool`` (a new dict when None) with the
    fitted members added for :func:`sknets.model_selection._pretrained.take`,
    and for each (candidate, split), in scikit-learn's order, the seconds of
    its member (0 for a fit not batched): its share of the batched training
    (:func:`~sknets.model_selection._batched.train_plans`), its own training
    plan and its share of the preprocessing of its fold. ``splits`` holds
    ``(train, test)`` index pairs; only the training rows are used. With
    ``refit``, each candidate's fit on all rows trains too (in ``run.refits``).
    The members train at ``run.place``; the reasons why fits are not
    batched go to ``run.reasons``.
    """
    start = time.perf_counter()
    pool = {} if pool is None else pool
    run = _Run() if run is None else run
    n_splits = len(splits)
    fits = [*splits, (np.arange(_num_samples(X)), None)] if refit else list(splits)
    shares = [0.0] * (len(candidates) * n_splits)
    reasons = {}
    prepared, members = {}, []
    for c, (params, est, reason) in enumerate(_plan(estimator, candidates, fit_params)):
        if reason is not None:
            _add_reason(reasons, reason, n_splits, est)
            continue
        transformers, name, final = _final_step(est)
        prep_key = repr(
            sorted((k, repr(v)) for k, v in params.items() if not k.startswith(f"{name}__"))
        )
        for split, (train, _) in enumerate(fits):
            slot = (prep_key, split)
            counted = split < n_splits
            if slot not in prepared:
                began = time.perf_counter()
                try:
                    X_train, y_train = _safe_split(est, X, y, train)
                    if transformers is not None:
                        X_train = clone(transformers).fit_transform(X_train, y_train)
                    # the slot's data, its preprocessing time, its members
                    prepared[slot] = [X_train, y_train, time.perf_counter() - began, 0]
                except Exception:  # the sequential fit raises it, as scikit-learn would
                    prepared[slot] = None
            if prepared[slot] is None:
                if counted:
                    _add_reason(reasons, "the fit fails on this data", 1, est)
                continue
            X_train, y_train = prepared[slot][:2]
            if final.batch_size != "auto" and final.batch_size > len(y_train):
                if counted:
                    _add_reason(reasons, "batch_size larger than the training set", 1, est)
                continue
            prepared[slot][3] += 1
            members.append((Fit(clone(final), slot, X_train, y_train), final, c, split))
    n_structures = n_chunks = 0
    where = Place()
    trained = 0
    if members:
        try:
            # planned (sknets._seam.plan) and trained where run.place says
            results, plan_seconds, n_structures, n_chunks, where = train_members(
                [fit for fit, *_ in members], run.place
            )
        except ClusterError:
            raise
        except Exception as exc:  # the fits then run one by one, as in scikit-learn
            if verbose:
                print(f"[sknets] no fit batched: {exc!r}")
            for _, final, _, split in members:
                if split < n_splits:
                    _add_reason(reasons, f"batched training raised {exc!r}", 1, final)
            members = results = plan_seconds = []
        for (fit, final, c, split), result, own in zip(members, results, plan_seconds):
            if result is None:
                # its fit fails before training: the search's own fit raises it
                if split < n_splits:
                    _add_reason(reasons, "the fit fails on this data", 1, final)
                continue
            trained += 1
            _pretrained.add(pool, final, fit.X, fit.y, result)
            _, _, prep_seconds, users = prepared[fit.slot]
            seconds = result.fit_time + own + prep_seconds / users
            if split < n_splits:
                shares[c * n_splits + split] = seconds
            else:
                run.refits[run.n_candidates + c] = (result, seconds)
    if verbose:
        if trained:
            on = f" in {n_chunks} chunk(s) on {where}" if where.elsewhere else ""
            print(
                f"[sknets] trained {trained} fit(s) as {n_structures} batched network(s)"
                f"{on} in {time.perf_counter() - start:.2f}s"
            )
        _print_reasons(reasons)
    run.add(reasons)
    return pool, shares


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


def _where(n_jobs):
    """:func:`find_place` of ``n_jobs``, or None where joblib refuses it
    (scikit-learn then raises its own error)."""
    try:
        return find_place(n_jobs)
    except Exception:
        return None


def _taken(result, pool):
    """Whether ``result`` has left ``pool`` (a fit adopted it)."""
    return all(entry[2] is not result for entries in pool.values() for entry in entries)


#: ``(search, (X, y, params, pool, run))`` of the search fitting now. Kept
#: off the search object: scikit-learn sends the search to its workers with
#: each fit (``caller=self``), and the data, the pool and a Dask client have
#: no business travelling with it.
_FITTING = contextvars.ContextVar("sknets_search_fitting", default=None)


class _BatchedSearchMixin:
    def _fitting(self):
        """This search's ``(X, y, params, pool, run)`` while it fits, or None."""
        active = _FITTING.get()
        return active[1] if active is not None and active[0] is self else None

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
        before = dict(self.__dict__)
        place = _where(self.n_jobs)
        run = _Run(place, here=place is not None and self._adopts_here(place, X, params))
        pool = {}
        token = _FITTING.set((self, (X, y, params, pool, run)))
        try:
            if run.here:
                # the fits only adopt pretrained members (or are fallbacks)
                self.n_jobs = None
            # the pool stays open for the refit, which may be pretrained too
            with _pretrained.members(pool), _evaluation_here(run):
                super().fit(X, y, **params)
        except BaseException:
            # a search that raises is left as it was
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        finally:
            _FITTING.reset(token)
        self.n_jobs = before["n_jobs"]
        refit = run.refits.get(getattr(self, "best_index_", None))
        if self.refit and refit is not None and _taken(refit[0], pool):
            # the refit adopted its member: its training time is the member's
            self.refit_time_ += refit[1]
        run.warn(stacklevel=2)
        return self

    def _adopts_here(self, place, X, params):
        """Whether scikit-learn's fits are to run in this process, where they
        adopt the members: always with no parallel backend; on one, when the
        search's estimator is batched and no fit parameter prevents it
        (otherwise scikit-learn sends every fit to the backend's workers)."""
        if not place.elsewhere:
            return True
        if why_not_batched(_final_step(self.estimator)[2]) is not None:
            return False
        try:
            X, _ = indexable(X, None)
            routed = self._get_routed_params_for_fit(_check_method_params(X, params=params))
            return not routed.estimator.fit
        except Exception:  # scikit-learn's fit raises it
            return False

    def _format_results(self, candidate_params, n_splits, out, more_results=None):
        """scikit-learn's ``cv_results_``, each pretrained fit's time with its
        member's share of the batched training (see :func:`pretrain`)."""
        data = self._fitting()
        if data is not None and any(data[4].shares):
            shares = data[4].shares
            out = [
                {**entry, "fit_time": entry["fit_time"] + share} if share else entry
                for entry, share in zip(out, shares)
            ] + list(out[len(shares):])
        return super()._format_results(candidate_params, n_splits, out, more_results)

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
            run = self._fitting()[4]
            n_shares = len(run.shares)
            try:
                splits_cv = self._pretrain(
                    candidate_params, cv or self._checked_cv_orig,
                    refit=self._refit_candidates(more_results),
                )
            finally:
                # one share per fit of these candidates, pretrained or not
                n = len(candidate_params) * self.n_splits_
                del run.shares[n_shares + n :]
                run.shares.extend([0.0] * (n_shares + n - len(run.shares)))
                run.n_candidates += len(candidate_params)
                run.n_fits += n
            return evaluate_candidates(
                candidate_params,
                cv=cv if splits_cv is None else splits_cv,
                more_results=more_results,
                callback_ctx=callback_ctx,
            )

        return evaluate

    def _refit_candidates(self, more_results):
        """Whether the best candidate may be among those evaluated now (with
        scikit-learn's ``more_results`` of that evaluation): then, on a GPU,
        their refits train with their members. A search that evaluates its
        candidates in several calls can say which."""
        return True

    def _pretrain(self, candidates, cv, refit=True):
        """Pretrain the candidates' fits on ``cv``'s splits, computed once;
        returns those splits as a cv, or None when nothing was pretrained
        (scikit-learn then runs exactly as it would alone). ``refit``: the
        candidates' refits may train with them (on a GPU)."""
        X, y, params, pool, run = self._fitting()
        X, y = indexable(X, y)
        # the routing that scikit-learn's fit has already done without error
        routed = self._get_routed_params_for_fit(_check_method_params(X, params=params))
        fit_params = routed.estimator.fit
        if not run.here and not run.place.elsewhere:
            return None  # joblib refuses n_jobs: scikit-learn raises it
        plans = _plan(self.estimator, candidates, fit_params)
        reasons = {}
        if not run.here:
            # scikit-learn sends every fit to the workers, which hold no member
            for _, est, reason in plans:
                reason = reason or (
                    "the search's estimator is not batched, and its fits run on "
                    f"{run.place}"
                )
                _add_reason(reasons, reason, self.n_splits_, est)
        elif all(r is not None for *_, r in plans):
            for _, est, reason in plans:
                _add_reason(reasons, reason, self.n_splits_, est)
        if reasons:
            if self.verbose:
                _print_reasons(reasons)
            run.add(reasons)
            return None
        try:
            splits = list(cv.split(X, y, **routed.splitter.split))
        except Exception:  # scikit-learn's evaluate_candidates raises it
            return None
        refit = refit and bool(self.refit) and _on_cuda(self.estimator)
        try:
            # on a GPU, one more member per candidate costs next to nothing:
            # the refit trains on all rows with the others
            _, shares = pretrain(
                self.estimator, candidates, X, y, splits, fit_params, self.verbose, pool,
                run, refit=refit,
            )
        except ClusterError:
            raise
        except Exception as exc:  # the fits then run one by one, as in scikit-learn
            if self.verbose:
                print(f"[sknets] no fit batched: {exc!r}")
            return _FixedSplits(cv, splits)
        run.shares.extend(shares)
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
    fits of sknets estimators that cannot be batched (``'lbfgs'``,
    convolutional networks, fit parameters such as
    ``sample_weight``, ...) run one by one as in scikit-learn, with one
    :class:`UserWarning` per search that names the reasons (and with
    ``verbose > 0``, a line per reason); scikit-learn's own estimators run
    as in scikit-learn, without a warning. Each member stops on its own
    (``tol`` / ``n_iter_no_change``, or with ``early_stopping=True`` on its
    own validation rows, keeping its best weights), exactly as its separate
    fit would. On a GPU the refit of every candidate is trained with the
    members; on a CPU the refit is an ordinary fit.

    Where the members train: in this process; with ``n_jobs > 1``, in
    chunks on joblib's local worker processes; inside
    ``with joblib.parallel_config(backend="dask"):``, in chunks on the
    workers of that Dask cluster, each on its own device (see
    :ref:`cluster`). scikit-learn's scoring and the refit run in this
    process. ``cv_results_["mean_fit_time"]`` and ``"std_fit_time"`` count
    each member's share of the batched training it was part of, plus its own
    set-up and the fit that adopted it. A search that raises is left as it
    was.

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
    scoring : str, callable, list, tuple, dict or None, default=None
        Strategy to evaluate the cross-validated model on the test folds:
        one score (a scorer name or a callable; None uses the estimator's
        ``score``) or several (a list, tuple or dict of scorers, or a
        callable that returns a dict of scores).
    n_jobs : int or None, default=None
        Number of jobs to run in parallel: None means 1 unless in a joblib
        backend context, -1 means all processors. With more than one job,
        the batched members train in chunks on that many local processes.
    refit : bool, str or callable, default=True
        Whether to refit an estimator with the best parameters found on the
        whole data set (``best_estimator_``); with several scores, the name
        of the scorer that picks the best parameters, or a callable that
        returns ``best_index_`` from ``cv_results_``.
    cv : int, cross-validation generator, iterable or None, default=None
        Cross-validation splitting strategy: None for 5 folds, an int for
        that many (Stratified)KFold folds, a CV splitter, or an iterable of
        (train, test) index arrays. The splits are computed once; the
        members train on the very splits they are scored on.
    verbose : int, default=0
        Verbosity of the messages printed while fitting: the higher, the
        more. Above 0, sknets also prints how many fits it trained batched,
        and a line per reason a fit was not batched.
    pre_dispatch : int, str or None, default='2*n_jobs'
        Number of jobs dispatched during the parallel execution of
        scikit-learn's fits: None for all at once, an int, or an expression
        of ``n_jobs`` such as ``'2*n_jobs'``.
    error_score : 'raise' or numeric, default=np.nan
        Value to assign to the score if an error occurs in estimator
        fitting: ``'raise'`` raises the error, a numeric value issues a
        ``FitFailedWarning``. The refit always raises.
    return_train_score : bool, default=False
        Whether ``cv_results_`` also holds the scores on the training folds.

    See Also
    --------
    RandomizedSearchCV : Randomized search over parameters, with batched sknets fits.
    cross_validate : Evaluate metrics by cross-validation, training all folds at once.
    sklearn.model_selection.GridSearchCV : The scikit-learn search this one extends.

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
    candidates are trained as in :class:`GridSearchCV`, in this process, on
    local processes (``n_jobs > 1``) or on a Dask cluster (see
    :ref:`cluster`).

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
    n_iter : int, default=10
        Number of parameter settings sampled; it trades run time for the
        quality of the solution.
    scoring : str, callable, list, tuple, dict or None, default=None
        Strategy to evaluate the cross-validated model on the test folds:
        one score (a scorer name or a callable; None uses the estimator's
        ``score``) or several (a list, tuple or dict of scorers, or a
        callable that returns a dict of scores).
    n_jobs : int or None, default=None
        Number of jobs to run in parallel: None means 1 unless in a joblib
        backend context, -1 means all processors. With more than one job,
        the batched members train in chunks on that many local processes.
    refit : bool, str or callable, default=True
        Whether to refit an estimator with the best parameters found on the
        whole data set (``best_estimator_``); with several scores, the name
        of the scorer that picks the best parameters, or a callable that
        returns ``best_index_`` from ``cv_results_``.
    cv : int, cross-validation generator, iterable or None, default=None
        Cross-validation splitting strategy: None for 5 folds, an int for
        that many (Stratified)KFold folds, a CV splitter, or an iterable of
        (train, test) index arrays. The splits are computed once; the
        members train on the very splits they are scored on.
    verbose : int, default=0
        Verbosity of the messages printed while fitting: the higher, the
        more. Above 0, sknets also prints how many fits it trained batched,
        and a line per reason a fit was not batched.
    pre_dispatch : int, str or None, default='2*n_jobs'
        Number of jobs dispatched during the parallel execution of
        scikit-learn's fits: None for all at once, an int, or an expression
        of ``n_jobs`` such as ``'2*n_jobs'``.
    random_state : int, RandomState instance or None, default=None
        Pseudo-random number generator state used to sample the parameter
        settings; pass an int for the same candidates across calls.
    error_score : 'raise' or numeric, default=np.nan
        Value to assign to the score if an error occurs in estimator
        fitting: ``'raise'`` raises the error, a numeric value issues a
        ``FitFailedWarning``. The refit always raises.
    return_train_score : bool, default=False
        Whether ``cv_results_`` also holds the scores on the training folds.

    See Also
    --------
    GridSearchCV : Exhaustive search over a parameter grid, with batched sknets fits.
    cross_validate : Evaluate metrics by cross-validation, training all folds at once.
    sklearn.model_selection.RandomizedSearchCV : The scikit-learn search this one extends.

    Examples
    --------
    >>> from scipy.stats import loguniform
    >>> from sklearn.datasets import load_iris
    >>> from sknets import MLPClassifier
    >>> from sknets.model_selection import RandomizedSearchCV
    >>> X, y = load_iris(return_X_y=True)
    >>> distributions = {"alpha": loguniform(1e-5, 1e-1),
    ...                  "learning_rate_init": [1e-3, 1e-2]}
    >>> search = RandomizedSearchCV(MLPClassifier(max_iter=20, random_state=0),
    ...                             distributions, n_iter=4, cv=3, random_state=0)
    >>> search = search.fit(X, y)
    >>> sorted(search.best_params_)
    ['alpha', 'learning_rate_init']
    >>> search.cv_results_["mean_test_score"].shape
    (4,)
    """


def _n_splits(estimator, X, y, groups, cv):
    """How many fits a cross-validation on ``cv`` makes, for the report;
    None where that is not known without splitting."""
    if cv is None or isinstance(cv, numbers.Integral) or hasattr(cv, "get_n_splits"):
        try:
            cv = check_cv(cv, y, classifier=is_classifier(estimator))
            return cv.get_n_splits(X, y, groups)
        except Exception:
            pass
    return None


def _pretrain_folds(
    estimator, X, y, groups, scoring, cv, params, error_score, verbose, run, one_score=False
):
    """``(cv, pool, shares)`` for scikit-learn's cross-validation: the splits
    computed once as scikit-learn's ``cross_validate`` computes them, the
    members pretrained on them (at ``run.place``) and each split's seconds
    of batched training (see :func:`pretrain`). Wherever scikit-learn would
    raise, or nothing is batched, ``pool`` is None and ``cv`` is what
    scikit-learn would have used, so that it runs (and raises) exactly as it
    would alone. ``one_score``: for cross_val_score, which passes
    ``{"score": scorer}``.
    """
    reason = why_not_batched(_final_step(estimator)[2])
    if reason is not None:
        reasons = {}
        run.n_fits = _n_splits(estimator, X, y, groups, cv)
        _add_reason(reasons, reason, run.n_fits, estimator)
        if verbose:
            _print_reasons(reasons)
        run.add(reasons)
        return cv, None, None
    try:
        if groups is not None and _routing_enabled():
            return cv, None, None  # scikit-learn's error
        X, y = indexable(X, y)
        params = {} if params is None else params
        # a generator is consumed here: scikit-learn gets the checked cv
        cv = check_cv(cv, y, classifier=is_classifier(estimator))
    except Exception:  # scikit-learn raises it
        return cv, None, None
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
        return cv, None, None
    run.n_fits = len(splits)
    try:
        pool, shares = pretrain(estimator, [{}], X, y, splits, fit_params, verbose, run=run)
    except ClusterError:
        raise
    except Exception as exc:  # the fits then run one by one, as in scikit-learn
        if verbose:
            print(f"[sknets] no fit batched: {exc!r}")
        pool, shares = None, None
    return _FixedSplits(cv, splits), pool or None, shares


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
    When ``estimator`` is a sknets estimator (or a Pipeline ending in one), the
    fits of all splits are trained as one batched network first, where
    :class:`GridSearchCV` trains them (this process, ``n_jobs`` local
    processes or a Dask cluster); each split's ``fit_time`` is its member's
    share of that training plus its own overhead. See :class:`GridSearchCV`.

    Parameters
    ----------
    estimator : estimator object
        The object to fit on each split, implementing ``fit``. Its fits are
        batched when it is a sknets estimator, alone or ending a Pipeline.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        The data to fit.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
        The target to predict, in supervised learning.
    groups : array-like of shape (n_samples,), default=None
        Group labels of the samples, for a "Group" splitter such as
        :class:`~sklearn.model_selection.GroupKFold`; with metadata routing
        enabled, pass them in ``params`` instead.
    scoring : str, callable, list, tuple, dict or None, default=None
        Strategy to evaluate the estimator on the test folds: one score (a
        scorer name or a callable; None uses the estimator's ``score``) or
        several (a list, tuple or dict of scorers, or a callable that
        returns a dict of scores).
    cv : int, cross-validation generator, iterable or None, default=None
        Cross-validation splitting strategy: None for 5 folds, an int for
        that many (Stratified)KFold folds, a CV splitter, or an iterable of
        (train, test) index arrays. The splits are computed once; the
        members train on the very splits they are scored on.
    n_jobs : int or None, default=None
        Number of jobs to run in parallel: None means 1 unless in a joblib
        backend context, -1 means all processors. With more than one job,
        the batched members train in chunks on that many local processes.
    verbose : int, default=0
        The verbosity level. Above 0, sknets also prints how many fits it
        trained batched, and a line per reason a fit was not batched.
    params : dict or None, default=None
        Parameters passed to the estimator's ``fit``, the scorer and the CV
        splitter. Fit parameters such as ``sample_weight`` make the fits
        run one by one.
    pre_dispatch : int or str, default='2*n_jobs'
        Number of jobs dispatched during the parallel execution of
        scikit-learn's fits: an int, or an expression of ``n_jobs`` such as
        ``'2*n_jobs'``.
    return_train_score : bool, default=False
        Whether to include the scores on the training folds.
    return_estimator : bool, default=False
        Whether to return the estimator fitted on each split.
    return_indices : bool, default=False
        Whether to return the train and test indices of each split.
    error_score : 'raise' or numeric, default=np.nan
        Value to assign to the score if an error occurs in estimator
        fitting: ``'raise'`` raises the error, a numeric value issues a
        ``FitFailedWarning``.

    Returns
    -------
    scores : dict
        Arrays of shape (n_splits,), as scikit-learn's: ``'test_score'`` (or
        a ``'test_<name>'`` per scorer), ``'fit_time'`` (with each member's
        share of the batched training) and ``'score_time'``; with
        ``return_train_score``, ``return_estimator`` and
        ``return_indices``, also ``'train_score'`` (or ``'train_<name>'``),
        ``'estimator'`` and ``'indices'`` (a dict of train and test
        index arrays).

    See Also
    --------
    cross_val_score : Evaluate a score by cross-validation, training all folds at once.
    GridSearchCV : Exhaustive search over a parameter grid, with batched sknets fits.
    sklearn.model_selection.cross_validate : The scikit-learn function this one runs.

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
    place = _where(n_jobs)
    run = _Run(place)
    if place is None:  # joblib refuses n_jobs: scikit-learn raises it
        cv, pool, shares = cv, None, None
    else:
        cv, pool, shares = _pretrain_folds(
            estimator, X, y, groups, scoring, cv, params, error_score, verbose, run,
            one_score=one_score,
        )
    # with members, scikit-learn's fits adopt them here; without, they run
    # where n_jobs (or joblib's backend) sends them, as in scikit-learn
    run.here = pool is not None
    with _pretrained.members(pool), _evaluation_here(run):
        result = function(
            estimator, X, y, groups=groups, scoring=scoring, cv=cv,
            n_jobs=None if pool else n_jobs,
            verbose=verbose, params=params, error_score=error_score, **rest,
        )
    if shares is not None and isinstance(result, dict) and "fit_time" in result:
        # each split's time with its member's share of the batched training
        result["fit_time"] = result["fit_time"] + np.asarray(shares, dtype=float)
    run.warn(stacklevel=3)
    return result


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

    Parameters
    ----------
    estimator : estimator object
        The object to fit on each split, implementing ``fit``. Its fits are
        batched when it is a sknets estimator, alone or ending a Pipeline.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        The data to fit.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
        The target to predict, in supervised learning.
    groups : array-like of shape (n_samples,), default=None
        Group labels of the samples, for a "Group" splitter such as
        :class:`~sklearn.model_selection.GroupKFold`; with metadata routing
        enabled, pass them in ``params`` instead.
    scoring : str, callable or None, default=None
        A scorer name or a callable that returns a single score; None uses
        the estimator's ``score``.
    cv : int, cross-validation generator, iterable or None, default=None
        Cross-validation splitting strategy: None for 5 folds, an int for
        that many (Stratified)KFold folds, a CV splitter, or an iterable of
        (train, test) index arrays. The splits are computed once; the
        members train on the very splits they are scored on.
    n_jobs : int or None, default=None
        Number of jobs to run in parallel: None means 1 unless in a joblib
        backend context, -1 means all processors. With more than one job,
        the batched members train in chunks on that many local processes.
    verbose : int, default=0
        The verbosity level. Above 0, sknets also prints how many fits it
        trained batched, and a line per reason a fit was not batched.
    params : dict or None, default=None
        Parameters passed to the estimator's ``fit``, the scorer and the CV
        splitter. Fit parameters such as ``sample_weight`` make the fits
        run one by one.
    pre_dispatch : int or str, default='2*n_jobs'
        Number of jobs dispatched during the parallel execution of
        scikit-learn's fits: an int, or an expression of ``n_jobs`` such as
        ``'2*n_jobs'``.
    error_score : 'raise' or numeric, default=np.nan
        Value to assign to the score if an error occurs in estimator
        fitting: ``'raise'`` raises the error, a numeric value issues a
        ``FitFailedWarning``.

    Returns
    -------
    scores : ndarray of shape (n_splits,)
        The score of the estimator on the test fold of each split.

    See Also
    --------
    cross_validate : Evaluate metrics by cross-validation, training all folds at once.
    sklearn.model_selection.cross_val_score : The scikit-learn function this one runs.

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
