"""Ideal state-space model (NumPy): the reference every circuit result is compared with.

Model (docs/design.md, "The model"). State ``x`` (N,), ``K`` shared decay constants ``taus`` (s), state ``n``
decays with ``tau[n] = taus[groups[n]]``. Pulse ``i`` of a :class:`~cimspice.schedule.PulseSchedule`
drives input row ``r_i`` with the rate ``a_i / t_p`` during ``[t_on_i, t_on_i + w_i)``::

    dx/dt = -x / tau + sum_i B[:, r_i] (a_i / t_p) 1[t_on_i <= t < t_on_i + w_i]

``simulate_ssm`` samples ``x`` at given instants with one of three input models:

``pulse`` (exact; the circuit's reference)
    Superposition of closed-form rectangle responses, per unit of ``B[:, r] a``:
    ``0`` before ``t_on``; ``(tau/t_p)(1 - e^{-(t - t_on)/tau})`` during the pulse;
    ``(tau/t_p)(1 - e^{-w/tau}) e^{-(t - t_on - w)/tau}`` after it. Exact for any overlap
    (the ODE is linear).
``dirac``
    Each pulse is an impulse of ``a w / t_p`` events at ``t_on`` (state jumps, right-continuous):
    ``x(t) = sum_i B[:, r_i] (a_i w_i / t_p) e^{-(t - t_on_i)/tau}`` for ``t >= t_on_i``.
    ``pulse`` tends to ``dirac`` as ``w -> 0`` (relative gap ``~ w / (2 tau)``).
``zoh``
    EventSSM's event-by-event zero-order hold (Schöne et al. 2024). Their code
    (``event_ssm/ssm.py: discretize_zoh``, ``dataloading.py: timesteps = np.diff(t)``, tokens
    ``[:-1]``) pairs event ``k`` with the interval *after* it, ``D_k = t_{k+1} - t_k``:
    ``x_k = e^{-D_k/tau} x_{k-1} + tau (1 - e^{-D_k/tau}) B u_k``. That is the exact solution
    of the ODE whose input ``B[:, r_k] u_k / t_p`` is held from ``t_k`` until the next event of
    the whole stream (any row), so ``x_k = x(t_{k+1})``; that continuous-time solution is what
    is sampled here (between events the state relaxes toward the held input, it does not only
    decay). Assumptions: ``u_k = a_k w_k / t_p`` (the pulse's event count, as in ``dirac``),
    the rate is ``u_k / t_p`` so ``B`` has the same meaning in all three methods (a hold of
    exactly ``t_p`` equals a ``pulse``); events sharing a time stamp get ``D = 0`` and so add
    nothing except the last one (as in EventSSM); the last event is held until
    ``schedule.duration`` (EventSSM drops it). Weights trained in EventSSM with a *real*
    eigenvalue ``Lambda``, step ``step`` and time in ms map to ``tau = -1e-3 / (Lambda step)``
    and ``B = 1e3 step t_p B_EventSSM`` (complex eigenvalues have no equivalent here).

Algorithm (vectorised over pulses, states and sample times; no Python loop per event). With
sample times sorted ``s_0 <= ... <= s_{M-1}``, each input rectangle is split into a
*completed* part (its end ``e_i <= s``) and an *active* part (``t_on_i < s < e_i``):

1. Completed: pulse ``i`` joins at the first sample ``m(i)`` with ``s_m >= e_i`` with weight
   ``g_i e^{-(s_m - e_i)/tau}`` (``g_i`` = value at its end; the exponent is ``<= 0`` so nothing
   overflows). Weights are summed per (sample, row) with a sparse matrix and projected by ``B``
   per decay group: ``Y`` (M, N).
2. The completed state obeys ``Z_m = e^{-(s_m - s_{m-1})/tau} Z_{m-1} + Y_m``; it is solved with a
   log-depth (Hillis-Steele) scan whose factors ``e^{-(s_m - s_{m-d})/tau}`` come straight from the
   times, so no factor exceeds 1 and every term carries at most ``log2 M`` roundings.
3. Active pulses at each sample are found with ``searchsorted`` on the onsets (window of the
   longest width; one per sample for ``zoh``, whose holds tile time) and added with the
   during-pulse formula.

Cost ``O(P K + M N log M + nnz N)``: a 100k-pulse stream, N=64, K=4, M=50 takes a few tens of
ms. ``sample_times='events'`` samples right after every pulse's input ends (``pulse``:
``t_on + w``; ``dirac``: ``t_on``; ``zoh``: the next event, i.e. EventSSM's ``x_k``).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .errors import ConfigError, InputError, one_line
from .io.files import atomic_path

METHODS = ("pulse", "dirac", "zoh")

__all__ = [
    "METHODS",
    "SSMParams",
    "default_sample_times",
    "load_ssm",
    "output",
    "random_ssm",
    "save_ssm",
    "simulate_ssm",
]


# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------

def _first_bad(mask: np.ndarray) -> str:
    """Index of the first True entry of ``mask``, formatted like ``3`` or ``(2, 5)``."""
    idx = np.unravel_index(int(np.flatnonzero(mask.ravel())[0]), mask.shape)
    return str(idx[0]) if len(idx) == 1 else str(tuple(int(i) for i in idx))


def _as_float(value, name: str, ndim: int, where: str, what: str, shape_doc: str) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {what} '{name}' is not numeric; give a {shape_doc} float "
                          f"array") from None
    if arr.ndim != ndim or arr.size == 0:
        raise ConfigError(f"{where}: {what} '{name}' has shape {arr.shape}; it must be a "
                          f"non-empty {shape_doc} array")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ConfigError(f"{where}: {what} '{name}' has a non-finite value (NaN/inf) at index "
                          f"{_first_bad(bad)}; replace it with a finite number")
    return arr


def _validated(B, taus, groups, C, D, where: str, what: str) -> dict:
    """Check and normalise the model arrays; ``where`` names the object or file in errors."""
    B = _as_float(B, "B", 2, where, what, "2-D (N states, C_in inputs)")
    n_states, n_inputs = B.shape
    taus = _as_float(np.atleast_1d(taus) if np.ndim(taus) == 0 else taus, "taus", 1, where, what,
                     "1-D (K,) seconds")
    bad = taus <= 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ConfigError(f"{where}: {what} 'taus' index {i} is {taus[i]:g}; decay constants "
                          f"must be > 0 seconds")
    k = taus.size
    if groups is None:
        if k != 1:
            raise ConfigError(f"{where}: {what} 'groups' is missing but there are {k} taus; give "
                              f"groups (N,) with the decay group 0..{k - 1} of every state")
        groups = np.zeros(n_states, dtype=np.int64)
    g = _as_float(groups, "groups", 1, where, what, "1-D (N,) integer")
    if g.shape != (n_states,):
        raise ConfigError(f"{where}: {what} 'groups' has {g.size} entries but B has {n_states} "
                          f"rows (states); give one decay group per state")
    bad = (g != np.round(g)) | (g < 0) | (g >= k)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ConfigError(f"{where}: {what} 'groups' index {i} is {g[i]:g}; it must be an integer "
                          f"in 0..{k - 1} (an index into taus)")
    out = {"B": B, "taus": taus, "groups": g.astype(np.int64), "C": None, "D": None}
    if C is not None:
        C = _as_float(C, "C", 2, where, what, "2-D (O outputs, N states)")
        if C.shape[1] != n_states:
            raise ConfigError(f"{where}: {what} 'C' has shape {C.shape}; it needs {n_states} "
                              f"columns (one per state, as B has {n_states} rows)")
        out["C"] = C
    if D is not None:
        D = _as_float(D, "D", 2, where, what, "2-D (O outputs, C_in inputs)")
        if D.shape[1] != n_inputs or (C is not None and D.shape[0] != out["C"].shape[0]):
            o = "O" if C is None else str(out["C"].shape[0])
            raise ConfigError(f"{where}: {what} 'D' has shape {D.shape}; it must be ({o}, "
                              f"{n_inputs}) (outputs x inputs, matching C and B)")
        out["D"] = D
    for arr in out.values():
        if arr is not None:
            arr.setflags(write=False)  # frozen means frozen: no in-place edits behind our back
    return out


@dataclass(frozen=True, eq=False)
class SSMParams:
    """One SSM layer with K shared decay constants.

    B: (N, C_in) input projection, per event (see module docstring for its scale).
    taus: (K,) decay constants, seconds. groups: (N,) int, decay group of each state (may be
    None when K == 1). C: (O, N) output projection or None. D: (O, C_in) feed-through or None.
    Arrays are copied to read-only float64 (groups int64); bad values raise ConfigError.
    """

    B: np.ndarray
    taus: np.ndarray
    groups: np.ndarray | None = None
    C: np.ndarray | None = None
    D: np.ndarray | None = None

    def __post_init__(self):
        for name, value in _validated(self.B, self.taus, self.groups, self.C, self.D,
                                      "SSMParams", "field").items():
            object.__setattr__(self, name, value)

    @property
    def n_states(self) -> int:
        return int(self.B.shape[0])

    @property
    def n_inputs(self) -> int:
        return int(self.B.shape[1])

    @property
    def n_groups(self) -> int:
        return int(self.taus.size)

    @property
    def tau(self) -> np.ndarray:
        """(N,) decay constant of every state, seconds."""
        return self.taus[self.groups]


def random_ssm(n_inputs: int, n_states: int, taus, *, seed: int, init: str = "gaussian",
               density: float = 0.25, scale: float | None = None) -> SSMParams:
    """Seeded reservoir-style SSM (C = D = None: the readout is trained later).

    Scale rule (LeCun-normal, the initialiser EventSSM uses for B): every row of B has expected
    squared norm 1, i.e. ``gaussian``: ``B ~ N(0, 1/C_in)``; ``sparse``: each entry non-zero with
    probability ``density``, non-zeros ``~ N(0, 1/(density C_in))``. So one event moves a state
    by O(1/sqrt(C_in)) and one event on every input by O(1); a row firing at rate ``rho`` holds
    its states near ``B rho tau``. ``scale`` overrides the standard deviation of the non-zeros.
    Groups are contiguous blocks: state ``n`` gets ``taus[(n K) // N]`` (blocks differ in size by
    at most one), so each decay group is a contiguous range of crossbar columns.
    """
    taus = np.atleast_1d(np.asarray(taus, dtype=np.float64))
    where = "random_ssm"
    for name, value in (("n_inputs", n_inputs), ("n_states", n_states)):
        if int(value) != value or value < 1:
            raise ConfigError(f"{where}: argument '{name}' is {value!r}; give a positive integer")
    n_inputs, n_states = int(n_inputs), int(n_states)
    if n_states < taus.size:
        raise ConfigError(f"{where}: argument 'n_states' is {n_states} but there are {taus.size} "
                          f"taus; give at least one state per decay group")
    if init not in ("gaussian", "sparse"):
        raise ConfigError(f"{where}: argument 'init' is {init!r}; use 'gaussian' or 'sparse'")
    if not 0 < density <= 1:
        raise ConfigError(f"{where}: argument 'density' is {density!r}; give a fraction in (0, 1]")
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise ConfigError(f"{where}: argument 'scale' is {scale!r}; give a positive std or None")
    rng = np.random.default_rng(seed)
    fan_in = n_inputs * (density if init == "sparse" else 1.0)
    std = scale if scale is not None else 1.0 / np.sqrt(fan_in)
    B = rng.normal(0.0, std, size=(n_states, n_inputs))
    if init == "sparse":
        B *= rng.random((n_states, n_inputs)) < density
    groups = (np.arange(n_states) * taus.size) // n_states
    return SSMParams(B=B, taus=taus, groups=groups)


_KEYS_DOC = "B (N, C_in), taus (K,) seconds, groups (N,) int, optional C (O, N), D (O, C_in)"


def save_ssm(path, params: SSMParams) -> None:
    """Write ``params`` to an ``.npz`` (keys B, taus, groups, C and D when set), atomically."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"{path}: directory {path.parent} does not exist; create it first")
    arrays = {"B": params.B, "taus": params.taus, "groups": params.groups}
    arrays.update({k: getattr(params, k) for k in ("C", "D") if getattr(params, k) is not None})
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_ssm(path) -> SSMParams:
    """Read an ``.npz`` written by :func:`save_ssm` or exported from training (extra keys such
    as ``bias`` are ignored). Every problem raises a one-line ConfigError naming file and key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found; give an .npz with keys {_KEYS_DOC}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{path}: not a readable .npz archive ({one_line(exc)}); write it "
                          f"with numpy.savez and keys {_KEYS_DOC}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ConfigError(f"{path}: holds a single array, not an .npz archive; save it with "
                          f"numpy.savez and keys {_KEYS_DOC}")
    values = {}
    with archive:
        for key in ("B", "taus", "groups", "C", "D"):
            if key not in archive.files:
                if key in ("B", "taus"):
                    raise ConfigError(f"{path}: key '{key}' is missing; the file needs keys "
                                      f"{_KEYS_DOC}")
                values[key] = None
                continue
            try:
                values[key] = archive[key]
            except Exception as exc:  # truncated member, bad zlib stream, object array
                raise ConfigError(f"{path}: key '{key}' cannot be read ({one_line(exc)}); "
                                  f"re-export the file") from None
    fields = _validated(values["B"], values["taus"], values["groups"], values["C"], values["D"],
                        str(path), "key")
    return SSMParams(**fields)



def output(params: SSMParams, states: np.ndarray) -> np.ndarray:
    """Readout ``y = C x`` for states (..., N) -> (..., O). (D u needs the input; not applied.)"""
    if params.C is None:
        raise ConfigError("SSMParams: field 'C' is None; give C (O, N) to compute outputs")
    states = np.asarray(states, dtype=np.float64)
    if states.shape[-1:] != (params.n_states,):
        raise InputError(f"output: states have shape {states.shape}; the last axis must be "
                         f"{params.n_states} (one value per state)")
    return states @ params.C.T


def default_sample_times(duration: float, m: int = 10) -> np.ndarray:
    """(m,) instants (s) evenly spaced over (0, duration]: ``duration * k / m``, k = 1..m; the
    last is exactly ``duration``."""
    if not (np.isfinite(duration) and duration > 0):
        raise InputError(f"default_sample_times: duration is {duration!r}; give a positive, "
                         f"finite duration in seconds")
    if int(m) != m or m < 1:
        raise InputError(f"default_sample_times: m is {m!r}; give a positive integer")
    return np.linspace(duration / m, duration, int(m))


# ---------------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------------

def _check_schedule(schedule, params: SSMParams) -> None:
    """The schedule checked itself at construction; here only that it fits the model."""
    where = "PulseSchedule"
    row = np.asarray(schedule.row)
    bad = (row < 0) | (row >= params.n_inputs)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{where}: field 'row' index {i} is {row[i]} but the SSM has "
                         f"{params.n_inputs} inputs (B columns); map events to rows "
                         f"0..{params.n_inputs - 1} or use a B with more columns")


def _sample_times(sample_times, schedule, method: str, t_on, end) -> np.ndarray:
    if sample_times is None:
        return default_sample_times(schedule.duration)
    if isinstance(sample_times, str):
        if sample_times != "events":
            raise InputError(f"simulate_ssm: sample_times is {sample_times!r}; give an array of "
                             f"seconds, None (default grid) or 'events'")
        return (t_on if method == "dirac" else end).copy()
    s = np.asarray(sample_times, dtype=np.float64)
    if s.ndim != 1:
        raise InputError(f"simulate_ssm: sample_times has shape {s.shape}; give a 1-D array of "
                         f"seconds")
    bad = ~np.isfinite(s)
    if bad.any():
        raise InputError(f"simulate_ssm: sample_times index {_first_bad(bad)} is not finite; give "
                         f"finite times in seconds")
    return s


class _RowSampleSum:
    """Sums of per-pulse weights per (sample, row) cell, as a matrix ready to multiply B^T.

    Built once per call and reused for every decay group: the cells are sorted once, each group
    only reduces its weights (O(Q)) and multiplies the (sample x row) table by ``B_g^T``. Dense
    when the table is small, CSR otherwise, so memory stays O(Q + M N) and never O(Q N).
    """

    def __init__(self, m: np.ndarray, rows: np.ndarray, n_samples: int, n_inputs: int):
        self.shape = (n_samples, n_inputs)
        self.n = rows.size
        cell = m.astype(np.int64) * n_inputs + rows
        self.dense = n_samples * n_inputs <= max(rows.size, 1 << 20)
        if self.dense:
            self.cell = cell
            return
        self.order = np.argsort(cell, kind="stable")
        cs = cell[self.order]
        self.starts = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]])
        first = cs[self.starts]
        self.indices = (first % n_inputs).astype(np.intp)
        self.indptr = np.r_[0, np.cumsum(np.bincount(first // n_inputs, minlength=n_samples))]

    def project(self, w: np.ndarray, Bg: np.ndarray) -> np.ndarray:
        """(M, N_g) = sum over pulses q of w[q] B_g[:, row_q] at sample m_q."""
        if self.n == 0:
            return np.zeros((self.shape[0], Bg.shape[0]))
        if self.dense:
            table = np.bincount(self.cell, w, minlength=self.shape[0] * self.shape[1])
            return table.reshape(self.shape) @ Bg.T
        data = np.add.reduceat(w[self.order], self.starts)
        S = sp.csr_matrix((data, self.indices, self.indptr), shape=self.shape)
        return np.asarray(S @ Bg.T)


_SCAN_BLOCK = 128


def _scan_blocks(s: np.ndarray, Z: np.ndarray, tau: float) -> None:
    """In place along axis -2: Z_a <- sum_{b <= a} e^{-(s_a - s_b)/tau} Z_b (log-depth scan).

    s (..., L) sorted on the last axis, Z (..., L, n). Each pass adds the partial sum d places
    back with the factor e^{-(s_a - s_{a-d})/tau} taken straight from the times (never > 1, so no
    overflow, and every term carries at most log2 L roundings).
    """
    d = 1
    while d < s.shape[-1]:
        factor = np.exp(-(s[..., d:] - s[..., :-d]) / tau)[..., None]
        Z[..., d:, :] += factor * Z[..., :-d, :]  # right side is evaluated before the update
        d *= 2


def _decay_scan_group(s: np.ndarray, Y: np.ndarray, tau: float) -> np.ndarray:
    """Z_m = e^{-(s_m - s_{m-1})/tau} Z_{m-1} + Y_m for sorted s (M,), Y (M, n)."""
    M = s.size
    if M <= _SCAN_BLOCK:
        Z = Y.copy()
        _scan_blocks(s, Z, tau)
        return Z
    # Two levels keep the full-size passes at log2(block): scan inside fixed blocks, then scan
    # the block ends (recursively) and add each block's carry-in with its exact decay.
    nb = -(-M // _SCAN_BLOCK)
    pad = nb * _SCAN_BLOCK - M
    sb = np.concatenate([s, np.full(pad, s[-1])]).reshape(nb, _SCAN_BLOCK)
    Zb = np.concatenate([Y, np.zeros((pad, Y.shape[1]))]).reshape(nb, _SCAN_BLOCK, -1)
    _scan_blocks(sb, Zb, tau)
    ends = _decay_scan_group(sb[:, -1], Zb[:, -1, :], tau)  # state at each block end
    Zb[1:] += np.exp(-(sb[1:] - sb[:-1, -1:]) / tau)[..., None] * ends[:-1, None, :]
    return Zb.reshape(nb * _SCAN_BLOCK, -1)[:M]


def _active_pairs(s: np.ndarray, t_on: np.ndarray, end: np.ndarray, tiled: bool):
    """(sample index, pulse index) pairs with t_on < s < end; t_on sorted ascending."""
    if tiled:  # zoh holds tile time: at most one, the last onset before s
        k = np.searchsorted(t_on, s, side="left") - 1
        ok = k >= 0
        ok[ok] = s[ok] < end[k[ok]]
        return np.flatnonzero(ok), k[ok]
    w_max = float(np.max(end - t_on))
    margin = 4 * np.finfo(float).eps * (np.abs(s) + w_max)  # rounding of t_on + width
    lo = np.searchsorted(t_on, s - w_max - margin, side="left")
    hi = np.searchsorted(t_on, s, side="left")  # onsets strictly before s
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    m = np.repeat(np.arange(s.size), counts)
    # candidate pulse = lo[m] + position within its sample's run
    starts = np.cumsum(counts) - counts
    i = lo[m] + (np.arange(total) - starts[m])
    keep = end[i] > s[m]
    return m[keep], i[keep]


def simulate_ssm(params: SSMParams, schedule, sample_times=None,
                 method: str = "pulse") -> np.ndarray:
    """States (M, N) at ``sample_times`` (s; any order, duplicates allowed), starting from x = 0.

    schedule: :class:`cimspice.schedule.PulseSchedule` (rows must be < ``params.n_inputs``).
    sample_times: (M,) seconds; None -> ``default_sample_times(schedule.duration)``; ``'events'``
    -> right after each pulse's input ends, one row per pulse in schedule order (see module doc).
    method: ``'pulse'`` (exact rectangles, circuit reference), ``'dirac'`` or ``'zoh'`` (EventSSM).
    """
    if method not in METHODS:
        raise InputError(f"simulate_ssm: method is {method!r}; use one of {', '.join(METHODS)}")
    _check_schedule(schedule, params)
    t_p = float(schedule.t_p)
    order_p = np.argsort(np.asarray(schedule.t_on, dtype=np.float64), kind="stable")
    row = np.asarray(schedule.row, dtype=np.intp)[order_p]
    t_on = np.asarray(schedule.t_on, dtype=np.float64)[order_p]
    width = np.asarray(schedule.width, dtype=np.float64)[order_p]
    amp = np.asarray(schedule.amplitude, dtype=np.float64)[order_p]
    taus = params.taus[:, None]

    # Every method is "rectangles of rate `rate` on [t_on, end)" except dirac (impulses at t_on).
    if method == "pulse":
        end = t_on + width
        rate = amp / t_p
    elif method == "zoh":
        count = amp * width / t_p
        end = np.append(t_on[1:], max(float(schedule.duration), t_on[-1])) if t_on.size else t_on
        rate = count / t_p
    else:
        end = t_on
        rate = None

    s = _sample_times(sample_times, schedule, method, t_on, end)
    if isinstance(sample_times, str):  # 'events': rows follow the schedule's pulse order
        s_events = np.empty_like(s)
        s_events[order_p] = s
        s = s_events
    n_samples = s.size
    X = np.zeros((n_samples, params.n_states))
    if n_samples == 0 or t_on.size == 0:
        return X
    order_s = np.argsort(s, kind="stable")
    ss = s[order_s]

    # 1. completed contributions, each evaluated at the first sample at or after its end
    m = np.searchsorted(ss, end, side="left")
    done = m < n_samples
    m_d = m[done]
    if method == "dirac":
        at_end = np.broadcast_to(amp[done] * width[done] / t_p, (params.n_groups, m_d.size))
    else:
        dur_on = end[done] - t_on[done]
        if dur_on.size and dur_on.min() == dur_on.max():  # the common case: all widths t_p
            at_end = rate[done] * (taus * -np.expm1(-dur_on[:1] / taus))
        else:
            at_end = rate[done] * taus * -np.expm1(-dur_on / taus)
    weights = at_end * np.exp(-(ss[m_d] - end[done]) / taus)
    completed = _RowSampleSum(m_d, row[done], n_samples, params.n_inputs)

    # 3. pulses still on at a sample time (added after the scan: they do not propagate)
    active = None
    if method != "dirac":
        m_a, i_a = _active_pairs(ss, t_on, end, tiled=(method == "zoh"))
        if m_a.size:
            during = rate[i_a] * taus * -np.expm1(-(ss[m_a] - t_on[i_a]) / taus)
            active = _RowSampleSum(m_a, row[i_a], n_samples, params.n_inputs)

    Xs = np.empty((n_samples, params.n_states))
    for k, tau in enumerate(params.taus):
        cols = np.flatnonzero(params.groups == k)
        if cols.size == 0:
            continue
        if cols[-1] - cols[0] + 1 == cols.size:  # contiguous block (random_ssm): a view
            cols = slice(int(cols[0]), int(cols[-1]) + 1)
        Bg = params.B[cols]
        # 2. propagate completed contributions from sample to sample
        Zg = _decay_scan_group(ss, completed.project(weights[k], Bg), float(tau))
        if active is not None:
            Zg += active.project(during[k], Bg)
        Xs[:, cols] = Zg
    if np.all(order_s[1:] > order_s[:-1]):  # samples were given sorted
        return Xs
    X[order_s] = Xs
    return X
