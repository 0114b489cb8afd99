"""Readout: a linear classifier on the sampled SSM states (pure NumPy + SciPy).

Features are the states at the sample times, ``(S, M, N)`` flattened to ``(S, M*N)`` and
standardised with the statistics of the training split. Two classifiers with scikit-learn's
estimator shape (``fit`` / ``predict`` / ``decision_function`` / ``score`` / ``get_params`` /
``set_params``); scikit-learn is their test reference, not a dependency:

- :class:`RidgeReadout` — sklearn's ``RidgeClassifier``: one-vs-all targets in {-1, +1}
  (one column for two classes), intercept by centring ``X`` and ``Y``, closed form
  ``W = (Xcᵀ Xc + α I)⁻¹ Xcᵀ Yc`` through the SVD of ``Xc``. With ``alpha=None``, α is chosen
  from ``alphas`` by stratified k-fold cross-validation on the training split (standardisation
  refitted inside each fold, one SVD per fold serves every α).
- :class:`LogisticReadout` — sklearn's ``LogisticRegression`` (L2, lbfgs): minimises
  ``0.5·‖W‖² + C·Σᵢ cross_entropy(yᵢ, softmax(W xᵢ + b))`` (intercept not penalised;
  binary problems use the single-vector sigmoid form, as sklearn does) with SciPy's L-BFGS-B.

Use :func:`make_readout` to build one from a configuration.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from cimspice.errors import InputError

__all__ = [
    "Standardizer",
    "RidgeReadout",
    "LogisticReadout",
    "make_readout",
    "stratified_folds",
    "confusion_matrix",
    "accuracy",
]

DEFAULT_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3)


# --------------------------------------------------------------------------------------------
# Input checks (all at the boundary)


def _as_features(X, where: str) -> np.ndarray:
    """(S, ...) array-like -> (S, F) float64, finite. ``where`` names the caller in messages."""
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: X is not a numeric array ({exc}); pass states as floats") \
            from None
    if X.ndim < 2:
        raise InputError(f"{where}: X has shape {X.shape}; pass (S, F) features or (S, M, N) "
                         f"states (one row per sample)")
    if X.shape[0] == 0:
        raise InputError(f"{where}: X has no samples; pass at least one sample")
    X = X.reshape(X.shape[0], -1)
    if X.shape[1] == 0:
        raise InputError(f"{where}: X has 0 features per sample; pass non-empty states")
    finite = np.isfinite(X)
    if not finite.all():
        i, j = np.argwhere(~finite)[0]
        raise InputError(f"{where}: X has a non-finite value ({X[i, j]}) at sample {i}, "
                         f"feature {j}; drop or re-simulate that sample")
    return X


def _as_labels(y, n: int, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise InputError(f"{where}: y has shape {y.shape}; pass a 1-D array of labels")
    if y.shape[0] != n:
        raise InputError(f"{where}: X has {n} samples but y has {y.shape[0]} labels; "
                         f"pass one label per sample")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        i = int(np.flatnonzero(~np.isfinite(y))[0])
        raise InputError(f"{where}: y has a non-finite label at index {i}; "
                         f"labels must be integers or strings")
    return y


def _classes(y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    classes, idx = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise InputError(f"{where}: y has {classes.size} class ({classes.tolist()}); "
                         f"a classifier needs >= 2 classes in the training split")
    return classes, idx


def _check_number(where, name, value, *, low, low_inclusive, integer=False):
    ok_type = (isinstance(value, (int, np.integer)) if integer
               else isinstance(value, (int, float, np.integer, np.floating)))
    if isinstance(value, bool) or not ok_type or not np.isfinite(value) or (
            value < low if low_inclusive else value <= low):
        kind = "an integer" if integer else "a finite number"
        rel = ">=" if low_inclusive else ">"
        raise InputError(f"{where}: {name}={value!r} is invalid; use {kind} {rel} {low}")


# --------------------------------------------------------------------------------------------
# Standardisation


@dataclass(frozen=True)
class Standardizer:
    """Per-feature affine map ``(X - mean) / scale`` fitted on training features.

    ``scale`` is the population standard deviation (ddof=0, as sklearn's StandardScaler),
    replaced by 1 for features that are constant up to rounding (they map to 0 instead of
    dividing by ~0).
    """

    mean: np.ndarray   # (F,)
    scale: np.ndarray  # (F,)

    @classmethod
    def fit(cls, X) -> Standardizer:
        X = _as_features(X, "Standardizer.fit")
        n = X.shape[0]
        mean = X.mean(axis=0)
        var = X.var(axis=0)
        # Bound on the rounding error of the computed variance (same test as sklearn's
        # _is_constant_feature): below it the feature is constant, its "std" is noise.
        eps = np.finfo(np.float64).eps
        constant = var <= n * eps * var + (n * mean * eps) ** 2
        scale = np.where(constant, 1.0, np.sqrt(var))
        return cls(mean=mean, scale=scale)

    def transform(self, X) -> np.ndarray:
        """(S, ...) -> (S, F) standardised features."""
        X = _as_features(X, "Standardizer.transform")
        if X.shape[1] != self.mean.size:
            raise InputError(f"Standardizer.transform: X has {X.shape[1]} features, fitted on "
                             f"{self.mean.size}; use states with the training (M, N)")
        return (X - self.mean) / self.scale


# --------------------------------------------------------------------------------------------
# sklearn-shaped parameter handling


class _Readout:
    """get_params / set_params / repr / score shared by the readouts (sklearn's shape)."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """Constructor parameters as a dict (``deep`` is accepted for sklearn's ``clone``)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor parameters; returns self. Unknown names raise InputError."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise InputError(f"{type(self).__name__}.set_params: unknown parameter "
                                 f"{name!r}; valid: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_fitted(self, where: str):
        if not hasattr(self, "classes_"):
            raise InputError(f"{type(self).__name__}.{where}: readout is not fitted; "
                             f"call fit(X, y) first")

    def _features(self, X, where: str) -> np.ndarray:
        """Validated, flattened and (if enabled) standardised features for a fitted readout."""
        self._check_fitted(where)
        name = f"{type(self).__name__}.{where}"
        X = _as_features(X, name)
        if X.shape[1] != self.n_features_in_:
            raise InputError(f"{name}: X has {X.shape[1]} features per sample (flattened), the "
                             f"readout was fitted on {self.n_features_in_}; use states with "
                             f"the training (M, N)")
        return self.scaler_.transform(X) if self.scaler_ is not None else X

    def predict(self, X) -> np.ndarray:
        """(S, ...) -> (S,) predicted labels (elements of ``classes_``)."""
        d = self.decision_function(X)
        if d.ndim == 1:
            return self.classes_[(d > 0).astype(np.intp)]
        return self.classes_[np.argmax(d, axis=1)]

    def score(self, X, y) -> float:
        """Accuracy of ``predict(X)`` against ``y``."""
        return accuracy(y, self.predict(X))


# --------------------------------------------------------------------------------------------
# Ridge classifier


def stratified_folds(y, n_splits: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Deterministic stratified k-fold split: list of ``(train_idx, test_idx)``.

    Samples are shuffled within each class with ``seed``, then dealt to folds round-robin in
    class order, so every fold gets each class in proportion and fold sizes differ by <= 1.
    """
    y = np.asarray(y)
    n = y.shape[0]
    _check_number("stratified_folds", "n_splits", n_splits, low=2, low_inclusive=True,
                  integer=True)
    if n_splits > n:
        raise InputError(f"stratified_folds: n_splits={n_splits} exceeds the {n} samples; "
                         f"use cv <= number of training samples")
    _, idx = np.unique(y, return_inverse=True)
    perm = np.random.default_rng(seed).permutation(n)
    order = perm[np.argsort(idx[perm], kind="stable")]
    fold = np.empty(n, dtype=np.intp)
    fold[order] = np.arange(n) % n_splits
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_splits)]


def _pm1_targets(idx: np.ndarray, n_classes: int) -> np.ndarray:
    """Class indices -> {-1, +1} targets (S, T); T = 1 for two classes (+1 = classes_[1])."""
    if n_classes == 2:
        return np.where(idx == 1, 1.0, -1.0)[:, None]
    Y = -np.ones((idx.size, n_classes))
    Y[np.arange(idx.size), idx] = 1.0
    return Y


def _svd_parts(Xc: np.ndarray, Yc: np.ndarray):
    """Thin SVD of centred features and the projected targets Uᵀ Yc."""
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    return s, Vt, U.T @ Yc


def _shrink(s: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Ridge filter factors s / (s² + α), (A, r); 0 where s² + α == 0 (min-norm solution)."""
    den = s[None, :] ** 2 + alphas[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, s[None, :] / den, 0.0)


class RidgeReadout(_Readout):
    """Ridge classifier (sklearn ``RidgeClassifier`` / ``RidgeClassifierCV`` equivalent).

    Parameters
    ----------
    alpha : float >= 0 or None
        Fixed L2 penalty; None selects it from ``alphas`` by cross-validation.
    alphas : sequence of float > 0
        Candidate penalties for the cross-validation.
    cv : int >= 2
        Number of stratified folds (see :func:`stratified_folds`).
    standardize : bool
        Standardise features with training statistics (refitted inside each CV fold).
    seed : int
        Seed of the fold shuffle: same data and seed -> same folds -> same ``alpha_``.
    scoring : 'accuracy' | 'mse'
        CV criterion: mean fold accuracy (what sklearn's k-fold RidgeClassifierCV maximises)
        or mean squared error of the ±1 targets. Ties go to the largest α (simplest model).

    Fitted attributes: ``classes_``, ``alpha_``, ``coef_`` (T, F) and ``intercept_`` (T,) in
    the standardised feature space (T = 1 for two classes), ``scaler_`` (Standardizer or
    None), ``n_features_in_``, and with CV ``cv_scores_`` (A,) mean fold score per ``alphas``
    entry (accuracy, or negated MSE).
    """

    def __init__(self, alpha=None, alphas=DEFAULT_ALPHAS, cv=5, standardize=True, seed=0,
                 scoring="accuracy"):
        self.alpha = alpha
        self.alphas = alphas
        self.cv = cv
        self.standardize = standardize
        self.seed = seed
        self.scoring = scoring

    def _validate(self) -> np.ndarray:
        """Check parameters; returns the alpha grid as an array."""
        w = type(self).__name__
        if self.alpha is not None:
            _check_number(w, "alpha", self.alpha, low=0, low_inclusive=True)
        try:
            grid = np.asarray(self.alphas, dtype=np.float64)
        except (TypeError, ValueError):
            grid = np.array([np.nan])
        if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
            raise InputError(f"{w}: alphas={self.alphas!r} is invalid; use a non-empty list of "
                             f"positive numbers, e.g. {DEFAULT_ALPHAS}")
        _check_number(w, "cv", self.cv, low=2, low_inclusive=True, integer=True)
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise InputError(f"{w}: standardize={self.standardize!r} is invalid; use True/False")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool):
            raise InputError(f"{w}: seed={self.seed!r} is invalid; use an integer")
        if self.scoring not in ("accuracy", "mse"):
            raise InputError(f"{w}: scoring={self.scoring!r} is invalid; use 'accuracy' or 'mse'")
        return grid

    def fit(self, X, y) -> RidgeReadout:
        """Fit on training features ``X`` (S, ...) and labels ``y`` (S,); returns self."""
        grid = self._validate()
        X = _as_features(X, "RidgeReadout.fit")
        y = _as_labels(y, X.shape[0], "RidgeReadout.fit")
        classes, idx = _classes(y, "RidgeReadout.fit")
        Y = _pm1_targets(idx, classes.size)

        if self.alpha is None:
            if self.cv > X.shape[0]:
                raise InputError(f"RidgeReadout.fit: cv={self.cv} folds but only {X.shape[0]} "
                                 f"training samples; lower cv or pass a fixed alpha")
            self.cv_scores_ = self._cv_scores(X, Y, idx, grid)
            best = self.cv_scores_.max()
            # Equal scores -> largest alpha: the most regularised of the equally good models.
            self.alpha_ = float(grid[self.cv_scores_ >= best].max())
        else:
            self.alpha_ = float(self.alpha)
            self.__dict__.pop("cv_scores_", None)  # no stale CV result from an earlier fit

        self.scaler_ = Standardizer.fit(X) if self.standardize else None
        Xs = self.scaler_.transform(X) if self.scaler_ is not None else X
        self.coef_, self.intercept_ = self._solve(Xs, Y, self.alpha_)
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        return self

    @staticmethod
    def _solve(X: np.ndarray, Y: np.ndarray, alpha: float):
        x_mean, y_mean = X.mean(axis=0), Y.mean(axis=0)
        s, Vt, UtY = _svd_parts(X - x_mean, Y - y_mean)
        W = Vt.T @ (_shrink(s, np.array([alpha]))[0][:, None] * UtY)  # (F, T)
        return W.T.copy(), y_mean - x_mean @ W

    def _cv_scores(self, X, Y, idx, grid) -> np.ndarray:
        """Mean over folds of the per-fold score for every alpha, (A,)."""
        folds = stratified_folds(idx, self.cv, self.seed)
        scores = np.zeros((len(folds), grid.size))
        for f, (tr, te) in enumerate(folds):
            Xtr, Xte = X[tr], X[te]
            if self.standardize:
                sc = Standardizer.fit(Xtr)
                Xtr, Xte = sc.transform(Xtr), sc.transform(Xte)
            x_mean, y_mean = Xtr.mean(axis=0), Y[tr].mean(axis=0)
            s, Vt, UtY = _svd_parts(Xtr - x_mean, Y[tr] - y_mean)
            P = (Xte - x_mean) @ Vt.T                                         # (V, r)
            D = _shrink(s, grid)                                              # (A, r)
            pred = P @ (D[:, :, None] * UtY) + y_mean                         # (A, V, T)
            if self.scoring == "mse":
                scores[f] = -np.mean((pred - Y[te]) ** 2, axis=(1, 2))
            else:
                if pred.shape[2] == 1:
                    hat = (pred[:, :, 0] > 0).astype(np.intp)
                else:
                    hat = np.argmax(pred, axis=2)
                scores[f] = np.mean(hat == idx[te], axis=1)
        return scores.mean(axis=0)

    def decision_function(self, X) -> np.ndarray:
        """Scores (S, K), or (S,) for two classes (> 0 means ``classes_[1]``)."""
        Xs = self._features(X, "decision_function")
        d = Xs @ self.coef_.T + self.intercept_
        return d[:, 0] if d.shape[1] == 1 else d


# --------------------------------------------------------------------------------------------
# Multinomial logistic regression


def _binary_loss_grad(w, X, y01, l2):
    """Mean binary cross-entropy + l2/2 ‖coef‖², and its gradient; w = [coef..., b]."""
    z = X @ w[:-1] + w[-1]
    loss = np.mean(np.logaddexp(0.0, z) - y01 * z) + 0.5 * l2 * (w[:-1] @ w[:-1])
    g = (special.expit(z) - y01) / X.shape[0]
    return loss, np.concatenate([X.T @ g + l2 * w[:-1], [g.sum()]])


def _multinomial_loss_grad(w, X, Y, l2):
    """Mean multinomial cross-entropy + l2/2 ‖W‖²; w = [W.ravel() (K·F), b (K)].

    W is kept as a contiguous block: NumPy's matmul falls off BLAS (~15x slower, measured)
    for a column-sliced view of a stacked [W | b] array.
    """
    K = Y.shape[1]
    W = w[:-K].reshape(K, -1)
    b = w[-K:]
    Z = X @ W.T + b
    lse = special.logsumexp(Z, axis=1)  # stable log-sum-exp
    loss = np.mean(lse - np.sum(Y * Z, axis=1)) + 0.5 * l2 * np.sum(W * W)
    G = (np.exp(Z - lse[:, None]) - Y) / X.shape[0]  # softmax - onehot, (S, K)
    return loss, np.concatenate([(G.T @ X + l2 * W).ravel(), G.sum(axis=0)])


class LogisticReadout(_Readout):
    """Multinomial logistic regression with L2 penalty (sklearn ``LogisticRegression``, lbfgs).

    Minimises ``0.5·‖W‖² + C·Σᵢ CE(yᵢ, softmax(W xᵢ + b))``, intercept not penalised; two
    classes use the sigmoid form with a single vector, as sklearn does. The objective is
    divided by ``C·S`` for the solver (same optimum, better scaled), exactly like sklearn, so
    ``tol`` is L-BFGS-B's projected-gradient tolerance on the per-sample loss.

    Fitted attributes: ``classes_``, ``coef_`` (K, F) or (1, F), ``intercept_`` (K,) or (1,)
    in the standardised feature space, ``scaler_``, ``n_features_in_``, ``n_iter_``.
    Multinomial intercepts are centred to sum 0 (the softmax is invariant to a common shift).
    """

    def __init__(self, C=1.0, max_iter=500, tol=1e-8, standardize=True):
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.standardize = standardize

    def _validate(self):
        w = type(self).__name__
        _check_number(w, "C", self.C, low=0, low_inclusive=False)
        _check_number(w, "max_iter", self.max_iter, low=1, low_inclusive=True, integer=True)
        _check_number(w, "tol", self.tol, low=0, low_inclusive=False)
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise InputError(f"{w}: standardize={self.standardize!r} is invalid; use True/False")

    def fit(self, X, y) -> LogisticReadout:
        """Fit on training features ``X`` (S, ...) and labels ``y`` (S,); returns self."""
        self._validate()
        X = _as_features(X, "LogisticReadout.fit")
        y = _as_labels(y, X.shape[0], "LogisticReadout.fit")
        classes, idx = _classes(y, "LogisticReadout.fit")
        self.scaler_ = Standardizer.fit(X) if self.standardize else None
        Xs = self.scaler_.transform(X) if self.scaler_ is not None else X
        S, F = Xs.shape
        K = classes.size
        l2 = 1.0 / (self.C * S)
        if K == 2:
            fun, args, n_par = _binary_loss_grad, (Xs, (idx == 1).astype(np.float64), l2), F + 1
        else:
            Y = np.zeros((S, K))
            Y[np.arange(S), idx] = 1.0
            fun, args, n_par = _multinomial_loss_grad, (Xs, Y, l2), K * (F + 1)
        res = optimize.minimize(
            fun, np.zeros(n_par), args=args, method="L-BFGS-B", jac=True,
            options={"maxiter": self.max_iter, "maxls": 50, "gtol": self.tol,
                     "ftol": 64 * np.finfo(np.float64).eps},
        )
        self.n_iter_ = int(res.nit)
        if res.nit >= self.max_iter:
            warnings.warn(f"LogisticReadout.fit: L-BFGS-B stopped at max_iter={self.max_iter} "
                          f"before reaching tol={self.tol}; raise max_iter or lower C",
                          RuntimeWarning, stacklevel=2)
        T = 1 if K == 2 else K
        self.coef_ = res.x[:-T].reshape(T, F).copy()
        self.intercept_ = res.x[-T:].copy()
        if K > 2:
            self.intercept_ -= self.intercept_.mean()
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        return self

    def decision_function(self, X) -> np.ndarray:
        """Logits (S, K), or (S,) log-odds of ``classes_[1]`` for two classes."""
        Xs = self._features(X, "decision_function")
        d = Xs @ self.coef_.T + self.intercept_
        return d[:, 0] if d.shape[1] == 1 else d

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (S, K), columns in ``classes_`` order."""
        d = self.decision_function(X)
        if d.ndim == 1:
            p = special.expit(d)
            return np.column_stack([1.0 - p, p])
        return special.softmax(d, axis=1)


# --------------------------------------------------------------------------------------------
# Factory and metrics

_KINDS = {"ridge": RidgeReadout, "logistic": LogisticReadout}


def make_readout(kind: str = "ridge", **kw):
    """Build a readout by name ('ridge' | 'logistic') with constructor keywords; parameters
    are checked now so a bad configuration fails before any simulation runs."""
    if kind not in _KINDS:
        raise InputError(f"make_readout: unknown kind {kind!r}; use one of {', '.join(_KINDS)}")
    cls = _KINDS[kind]
    valid = cls._param_names()
    unknown = [k for k in kw if k not in valid]
    if unknown:
        raise InputError(f"make_readout: unknown parameter {unknown[0]!r} for {kind!r}; "
                         f"valid: {', '.join(valid)}")
    est = cls(**kw)
    est._validate()
    return est


def _paired_labels(y_true, y_pred, where: str):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_pred.ndim != 1:
        raise InputError(f"{where}: labels must be 1-D (got {y_true.shape} and {y_pred.shape})")
    if y_true.size != y_pred.size:
        raise InputError(f"{where}: y_true has {y_true.size} labels but y_pred has "
                         f"{y_pred.size}; pass one prediction per sample")
    if y_true.size == 0:
        raise InputError(f"{where}: no labels; pass at least one sample")
    return y_true, y_pred


def accuracy(y_true, y_pred) -> float:
    """Fraction of samples with ``y_pred == y_true``."""
    y_true, y_pred = _paired_labels(y_true, y_pred, "accuracy")
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, labels=None) -> np.ndarray:
    """(L, L) int64 counts: row = true label, column = predicted label, in ``labels`` order
    (default: sorted union of both). Samples whose true or predicted label is not in
    ``labels`` are not counted (as in sklearn)."""
    y_true, y_pred = _paired_labels(y_true, y_pred, "confusion_matrix")
    labels = np.unique(np.concatenate([y_true, y_pred])) if labels is None else np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise InputError("confusion_matrix: labels must be a non-empty 1-D list")
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    if np.any(sorted_labels[1:] == sorted_labels[:-1]):
        raise InputError("confusion_matrix: labels contain duplicates; pass each label once")
    L = labels.size

    def index(v):
        pos = np.clip(np.searchsorted(sorted_labels, v), 0, L - 1)
        return order[pos], sorted_labels[pos] == v

    it, ok_t = index(y_true)
    ip, ok_p = index(y_pred)
    keep = ok_t & ok_p
    return np.bincount(it[keep] * L + ip[keep], minlength=L * L).reshape(L, L).astype(np.int64)
