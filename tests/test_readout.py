"""Readout vs scikit-learn (the test-only reference) on the same, identically standardised data.

Datasets: sklearn's make_classification (seeded; 4 classes, and a 2-class case for the
single-column/sigmoid paths) and the bundled digits set (10 classes, 64 pixels of which some
are constant — exercises the std floor). Split 70/30 with a seeded permutation.
"""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification
from sklearn.linear_model import LogisticRegression, RidgeClassifier, RidgeClassifierCV
from sklearn.metrics import accuracy_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import LabelBinarizer, StandardScaler

from threadpoolctl import threadpool_limits  # installed with scikit-learn

from cimspice.errors import InputError
from cimspice.readout import (
    DEFAULT_ALPHAS,
    LogisticReadout,
    RidgeReadout,
    Standardizer,
    accuracy,
    confusion_matrix,
    make_readout,
    stratified_folds,
)


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """These matrices are small: multi-threaded OpenBLAS only spins against the other
    processes on this 2-core machine (measured 15x slower under load), so use one thread."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _split(X, y, seed=0, frac=0.7):
    p = np.random.default_rng(seed).permutation(len(y))
    n = int(frac * len(y))
    return X[p[:n]], y[p[:n]], X[p[n:]], y[p[n:]]


def _multi():
    X, y = make_classification(n_samples=400, n_features=30, n_informative=10, n_redundant=5,
                               n_classes=4, n_clusters_per_class=1, random_state=0)
    return _split(X, y)


def _binary():
    X, y = make_classification(n_samples=300, n_features=20, n_informative=6, n_classes=2,
                               random_state=1)
    return _split(X, y)


_DIGITS = None


def _digits():
    global _DIGITS
    if _DIGITS is None:
        d = load_digits()
        _DIGITS = _split(d.data, d.target)
    return _DIGITS


DATASETS = {"multi": _multi, "binary": _binary, "digits": _digits}


def _scaled(Xtr, Xte):
    sc = StandardScaler().fit(Xtr)
    return sc.transform(Xtr), sc.transform(Xte)


# ------------------------------------------------------------------------------- Standardizer

def test_standardizer_matches_standardscaler_including_constant_features():
    Xtr, _, Xte, _ = _digits()
    assert np.any(Xtr.std(axis=0) == 0)  # digits has blank border pixels: the floor is used
    st = Standardizer.fit(Xtr)
    A, B = _scaled(Xtr, Xte)
    # Same formula (population std, scale 1 for constant features): equal to rounding.
    np.testing.assert_allclose(st.transform(Xte), B, rtol=0, atol=1e-12)
    np.testing.assert_allclose(st.transform(Xtr), A, rtol=0, atol=1e-12)
    assert np.all(np.isfinite(st.transform(Xte)))


# ------------------------------------------------------------------------------- Ridge

@pytest.mark.parametrize("name", ["multi", "binary", "digits"])
@pytest.mark.parametrize("alpha", [0.1, 10.0])
def test_ridge_fixed_alpha_matches_ridgeclassifier(name, alpha):
    Xtr, ytr, Xte, yte = DATASETS[name]()
    ours = RidgeReadout(alpha=alpha).fit(Xtr, ytr)
    A, B = _scaled(Xtr, Xte)
    ref = RidgeClassifier(alpha=alpha).fit(A, ytr)
    np.testing.assert_array_equal(ours.predict(Xte), ref.predict(B))
    np.testing.assert_array_equal(ours.classes_, ref.classes_)
    # Same closed-form solution (SVD here, Cholesky in sklearn); measured agreement ~1e-12.
    # (sklearn 1.9 stores binary coef_ 1-D; ours is (1, F) like LogisticRegression's.)
    np.testing.assert_allclose(ours.coef_.reshape(np.shape(ref.coef_)), ref.coef_,
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.intercept_.reshape(np.shape(ref.intercept_)),
                               ref.intercept_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.decision_function(Xte), ref.decision_function(B),
                               rtol=1e-6, atol=1e-9)
    assert ours.score(Xte, yte) == pytest.approx(ref.score(B, yte), abs=0)


def test_ridge_without_standardize_matches_raw_ridgeclassifier():
    Xtr, ytr, Xte, _ = _multi()
    ours = RidgeReadout(alpha=1.0, standardize=False).fit(Xtr, ytr)
    ref = RidgeClassifier(alpha=1.0).fit(Xtr, ytr)
    assert ours.scaler_ is None
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(ours.predict(Xte), ref.predict(Xte))


@pytest.mark.parametrize("name", ["multi", "binary", "digits"])
def test_ridge_cv_scores_equal_gridsearch_on_same_folds(name):
    """Our k-fold CV = sklearn GridSearchCV(StandardScaler -> RidgeClassifier) on our folds.

    Per-alpha mean fold accuracy must agree to rounding; the chosen alpha must be in the grid
    and equal sklearn's choice when the grid is given largest-first (GridSearchCV breaks ties
    by grid order, ours toward the largest alpha).
    """
    Xtr, ytr, Xte, yte = DATASETS[name]()
    ours = RidgeReadout(cv=5, seed=3).fit(Xtr, ytr)
    assert ours.alpha_ in DEFAULT_ALPHAS
    folds = stratified_folds(ytr, 5, seed=3)
    grid = sorted(DEFAULT_ALPHAS, reverse=True)
    gs = GridSearchCV(make_pipeline(StandardScaler(), RidgeClassifier()),
                      {"ridgeclassifier__alpha": grid}, cv=folds).fit(Xtr, ytr)
    ref_scores = dict(zip(grid, gs.cv_results_["mean_test_score"]))
    np.testing.assert_allclose(ours.cv_scores_, [ref_scores[a] for a in DEFAULT_ALPHAS],
                               rtol=0, atol=1e-12)
    assert ours.alpha_ == gs.best_params_["ridgeclassifier__alpha"]
    # The final model is the fixed-alpha model at alpha_.
    fixed = RidgeReadout(alpha=ours.alpha_).fit(Xtr, ytr)
    np.testing.assert_array_equal(ours.coef_, fixed.coef_)

    # Against sklearn's own RidgeClassifierCV (efficient leave-one-out, squared-error
    # criterion — a different CV scheme, so the alpha may differ): the test accuracy of our
    # CV-selected model must be within 3 pp of sklearn's. Measured: equal on all three sets.
    A, B = _scaled(Xtr, Xte)
    rcv = RidgeClassifierCV(alphas=DEFAULT_ALPHAS).fit(A, ytr)
    assert abs(ours.score(Xte, yte) - rcv.score(B, yte)) <= 0.03


def test_ridge_cv_mse_scoring_matches_gridsearch():
    Xtr, ytr, _, _ = _multi()
    ours = RidgeReadout(scoring="mse", seed=1).fit(Xtr, ytr)
    lb = LabelBinarizer(neg_label=-1, pos_label=1).fit(ytr)

    def neg_mse(est, X, y):  # mean squared error of the ±1 targets, like ours
        return -np.mean((est.decision_function(X) - lb.transform(y)) ** 2)

    gs = GridSearchCV(make_pipeline(StandardScaler(), RidgeClassifier()),
                      {"ridgeclassifier__alpha": list(DEFAULT_ALPHAS)},
                      cv=stratified_folds(ytr, 5, seed=1), scoring=neg_mse).fit(Xtr, ytr)
    # Continuous criterion: agreement to rounding of the fold sums.
    np.testing.assert_allclose(ours.cv_scores_, gs.cv_results_["mean_test_score"], rtol=1e-9)
    assert ours.alpha_ == gs.best_params_["ridgeclassifier__alpha"]


def test_ridge_cv_is_deterministic_and_seeded():
    Xtr, ytr, _, _ = _multi()
    a = RidgeReadout(seed=7).fit(Xtr, ytr)
    b = RidgeReadout(seed=7).fit(Xtr.copy(), ytr.copy())
    assert a.alpha_ == b.alpha_
    np.testing.assert_array_equal(a.cv_scores_, b.cv_scores_)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    # A different seed gives different folds (scores differ) but still a grid alpha.
    c = RidgeReadout(seed=8).fit(Xtr, ytr)
    assert c.alpha_ in DEFAULT_ALPHAS
    assert not np.array_equal(a.cv_scores_, c.cv_scores_)


def test_stratified_folds_partition_and_balance():
    y = np.repeat([0, 1, 2], [10, 7, 4])
    folds = stratified_folds(y, 3, seed=0)
    tests = np.concatenate([te for _, te in folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(y.size))  # each sample once
    for tr, te in folds:
        assert np.intersect1d(tr, te).size == 0 and tr.size + te.size == y.size
    sizes = [te.size for _, te in folds]
    assert max(sizes) - min(sizes) <= 1
    counts = np.array([np.bincount(y[te], minlength=3) for _, te in folds])
    assert np.all(counts.max(axis=0) - counts.min(axis=0) <= 1)  # every class spread evenly
    again = stratified_folds(y, 3, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))


def test_state_tensor_input_is_flattened():
    Xtr, ytr, Xte, _ = _multi()
    S3tr, S3te = Xtr.reshape(-1, 5, 6), Xte.reshape(-1, 5, 6)  # (S, M, N) states
    for est in (RidgeReadout(alpha=1.0), LogisticReadout(C=0.5)):
        flat = clone(est).fit(Xtr, ytr)
        cube = clone(est).fit(S3tr, ytr)
        np.testing.assert_array_equal(cube.coef_, flat.coef_)
        np.testing.assert_array_equal(cube.predict(S3te), flat.predict(Xte))


def test_string_labels():
    Xtr, ytr, Xte, _ = _multi()
    names = np.array(["up", "down", "left", "right"])
    a = RidgeReadout(alpha=1.0).fit(Xtr, ytr)
    b = RidgeReadout(alpha=1.0).fit(Xtr, names[ytr])
    # classes_ are sorted, so map through the sorted order
    np.testing.assert_array_equal(b.classes_, np.sort(names))
    np.testing.assert_array_equal(b.predict(Xte), names[a.predict(Xte)])


# ------------------------------------------------------------------------------- Logistic

def _objective(est, Xs, y):
    """Independent NumPy oracle of sklearn's lbfgs objective: 0.5‖W‖² + C·Σ cross-entropy."""
    Z = Xs @ est.coef_.T + est.intercept_
    classes = np.unique(y)
    if Z.shape[1] == 1:
        z, t = Z[:, 0], (y == classes[1]).astype(float)
        ce = np.sum(np.logaddexp(0, z) - t * z)
    else:
        idx = np.searchsorted(classes, y)
        m = Z.max(axis=1, keepdims=True)
        lse = (m + np.log(np.exp(Z - m).sum(axis=1, keepdims=True)))[:, 0]
        ce = np.sum(lse - Z[np.arange(len(y)), idx])
    return 0.5 * np.sum(est.coef_ ** 2) + est.C * ce


@pytest.mark.parametrize("name,C", [("multi", 0.1), ("multi", 1.0), ("binary", 1.0),
                                    ("digits", 1.0)])
def test_logistic_matches_sklearn(name, C):
    """Both minimise the same objective, strictly convex in W (L2 term) and in the intercepts
    on their sum-zero subspace, so the optimum is unique and two converged solvers must land on
    it: compare predictions (>= 99 % agreement required, measured 100 %), the objective value
    (rel 1e-9; measured <= 5e-12), and coefficients/intercepts (1e-4 of the largest |coef|;
    measured <= 1e-5 at our default tol=1e-8 — the residual is the solvers' stopping
    tolerance, not a model difference)."""
    Xtr, ytr, Xte, yte = DATASETS[name]()
    A, B = _scaled(Xtr, Xte)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither may stop at max_iter
        ours = LogisticReadout(C=C).fit(Xtr, ytr)
        ref = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(A, ytr)
    agree = np.mean(ours.predict(Xte) == ref.predict(B))
    assert agree >= 0.99
    assert ours.coef_.shape == ref.coef_.shape
    scale = np.abs(ref.coef_).max()
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(ours.predict_proba(Xte), ref.predict_proba(B), rtol=0, atol=1e-4)
    f_ours, f_ref = _objective(ours, A, ytr), _objective(ref, A, ytr)
    assert f_ours == pytest.approx(f_ref, rel=1e-9)
    assert ours.score(Xte, yte) == pytest.approx(accuracy_score(yte, ours.predict(Xte)))


def test_logistic_probabilities_are_normalised_and_consistent():
    Xtr, ytr, Xte, _ = _multi()
    est = LogisticReadout(C=1.0).fit(Xtr, ytr)
    P = est.predict_proba(Xte)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(est.classes_[P.argmax(axis=1)], est.predict(Xte))
    assert abs(est.intercept_.sum()) < 1e-12  # centred (softmax shift invariance)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_logistic_is_stable_for_huge_logits(n_classes):
    """Separable data with features of 1e5: the first L-BFGS step already gives logits of
    several hundred (measured 580-870); predicting on 100x larger inputs gives logits > 1e4,
    where a naive exp() overflows (limit ~710). No overflow warning, finite probabilities."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(n_classes), 20)
    X = rng.normal(size=(y.size, 3)) * 0.01 + 1e5 * np.eye(3)[y]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy overflow RuntimeWarnings become failures
        est = LogisticReadout(C=1e6, standardize=False).fit(X, y)
        assert np.abs(est.decision_function(X)).max() > 500
        assert np.abs(est.decision_function(100 * X)).max() > 1e4
        P = est.predict_proba(100 * X)
    assert np.all(np.isfinite(est.coef_)) and np.all(np.isfinite(P))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert est.score(X, y) == 1.0 and est.score(100 * X, y) == 1.0


def test_logistic_warns_when_max_iter_hit():
    Xtr, ytr, _, _ = _digits()
    with pytest.warns(RuntimeWarning, match="max_iter=3"):
        LogisticReadout(C=1.0, max_iter=3).fit(Xtr[:300], ytr[:300])


# ------------------------------------------------------------------------------- params

@pytest.mark.parametrize("est", [RidgeReadout(alpha=None, alphas=(0.5, 5.0), cv=3, seed=2),
                                 LogisticReadout(C=0.3, max_iter=50, tol=1e-6,
                                                 standardize=False)])
def test_get_params_round_trip_and_clone(est):
    params = est.get_params()
    twin = type(est)(**params)
    assert twin.get_params() == params
    assert clone(est).get_params() == params  # sklearn's clone accepts our estimators
    assert repr(est).startswith(type(est).__name__ + "(")
    with pytest.raises(InputError, match="unknown parameter 'bogus'"):
        est.set_params(bogus=1)


def test_set_params_changes_the_fit():
    Xtr, ytr, _, _ = _multi()
    est = RidgeReadout().fit(Xtr, ytr)
    assert hasattr(est, "cv_scores_")
    assert est.set_params(alpha=3.0) is est
    assert est.fit(Xtr, ytr).alpha_ == 3.0
    assert not hasattr(est, "cv_scores_")
    np.testing.assert_array_equal(est.coef_, RidgeReadout(alpha=3.0).fit(Xtr, ytr).coef_)


def test_make_readout():
    r = make_readout("ridge", alpha=2.0)
    assert isinstance(r, RidgeReadout) and r.alpha == 2.0
    lg = make_readout("logistic", C=0.5)
    assert isinstance(lg, LogisticReadout) and lg.C == 0.5
    with pytest.raises(InputError, match="unknown kind 'svm'.*ridge, logistic"):
        make_readout("svm")
    with pytest.raises(InputError, match="unknown parameter 'C' for 'ridge'"):
        make_readout("ridge", C=1.0)
    with pytest.raises(InputError, match="C=-1"):
        make_readout("logistic", C=-1)
    with pytest.raises(InputError, match="alphas="):
        make_readout("ridge", alphas=())
    with pytest.raises(InputError, match="cv=1"):
        make_readout("ridge", cv=1)


# ------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("cls", [RidgeReadout, LogisticReadout])
def test_bad_input_messages(cls):
    Xtr, ytr, Xte, _ = _multi()
    name = cls.__name__
    with pytest.raises(InputError, match=rf"{name}.fit: y has 1 class .*>= 2 classes") as e:
        cls().fit(Xtr, np.zeros(len(ytr), int))
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match=r"X has 280 samples but y has 279 labels"):
        cls().fit(Xtr, ytr[:-1])
    bad = Xtr.copy()
    bad[17, 4] = np.nan
    with pytest.raises(InputError, match=r"non-finite value \(nan\) at sample 17, feature 4"):
        cls().fit(bad, ytr)
    with pytest.raises(InputError, match="not fitted"):
        cls().predict(Xte)
    est = cls().fit(Xtr, ytr)
    with pytest.raises(InputError, match="X has 29 features .* fitted on 30"):
        est.predict(Xte[:, :29])
    with pytest.raises(InputError, match="shape"):
        est.predict(Xte[0])


def test_cv_larger_than_training_set():
    X = np.arange(12.0).reshape(4, 3)
    with pytest.raises(InputError, match="cv=5 folds but only 4 training samples"):
        RidgeReadout().fit(X, [0, 1, 0, 1])


# ------------------------------------------------------------------------------- metrics

def test_confusion_matrix_and_accuracy_match_sklearn():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 5, 200))
    labels = [3, 0, 4, 1]  # custom order, label 2 left out
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, labels),
                                  sk_confusion_matrix(y_true, y_pred, labels=labels))
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred),
                                  sk_confusion_matrix(y_true, y_pred))
    assert accuracy(y_true, y_pred) == accuracy_score(y_true, y_pred)
    cm = confusion_matrix(y_true, y_pred)
    assert np.trace(cm) / cm.sum() == pytest.approx(accuracy(y_true, y_pred))
    with pytest.raises(InputError, match="y_true has 200 labels but y_pred has 199"):
        accuracy(y_true, y_pred[:-1])
    with pytest.raises(InputError, match="duplicates"):
        confusion_matrix(y_true, y_pred, [0, 0, 1])
