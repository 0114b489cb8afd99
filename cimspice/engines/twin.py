"""Circuit twin: an exact event-driven NumPy engine of the cimspice SSM-layer deck.

It reproduces what ngspice computes for the deck of ``cimspice.netlist.build_deck`` (rows =
PWL trapezoids, 1T1R / 1R crossbar to 0 V sense sources, ideal write drivers
``V_n = R_n (I_n+ - I_n-)`` (optionally ``v_clamp tanh(./v_clamp)``), two volatile state devices
per state seeing +V_n and -V_n), without a circuit simulator:

* the global time axis is cut at every PWL corner and every sample time; inside a segment
  every row voltage is constant or linear in time;
* the crossbar has no capacitance, so the column currents are an algebraic function of the row
  voltages. With ideal wires rows superpose (each column is a virtual ground): closed form for
  1R cells, exact vectorised Newton solves of the 1T1R cells (the values at every full level and
  at the quadrature nodes of a full edge are cached per mapping). With wire resistance: the
  exact linear transfer matrix (1R, linear RRAM) or a batched fixed-point nodal solve
  (non-linear cells) of every distinct row-voltage vector;
* on a flat segment the drive is constant and each device's ODE (linear in w) has the exact
  exponential solution; on a ramp segment the integrating-factor solution
  ``w(t1) = e^{-A} w0 + int b(s) e^{-(A(t1)-A(s))} ds`` is evaluated with composite
  Gauss-Legendre quadrature (A at the nodes from the Gauss collocation integration matrix);
* every segment is then an affine map ``w -> alpha w + beta``; the maps are chained with a
  blocked log-domain prefix scan (no per-segment Python loop), in chunks of segments so that the
  memory does not grow with the stream length.

The devices and the per-segment maps are in :mod:`.twin_device`.

Public API: :func:`run_twin`, :func:`check_supported` (from :mod:`.twin_support`); the state
twin's read segments are :class:`.twin_trace.StateReadMaps`.
"""
from __future__ import annotations

import time

import numpy as np

from .. import __version__
from ..config import Config
from ..errors import InputError
from ..hardware.devices import sinh_read
from ..hardware.mapping import CircuitMapping
from ..hardware.variation import interval_factors
from ..schedule import PulseSchedule
from .base import EngineRun
from .twin_crossbar import Crossbar
from .twin_device import _Devices, _flat_maps, _gl_rule, _ramp_maps, sorted_unique
from .twin_energy import StateEnergy, state_crossbar_energy
from .twin_kernel import FALL, FLAT, PART, RISE, chain_segments, device_params, drive_tables
from .twin_support import check_supported
from .twin_trace import StateReadMaps, run_twin_trace


__all__ = ["run_twin", "check_supported"]

# quadrature on ramp segments: S equal sub-intervals x Q Gauss-Legendre nodes
_RAMP_SUB = 2            # (sinh write: more nodes, see run_twin)
_RAMP_Q = 4
_ARRAY_BYTES = 120_000   # target size of the largest temporaries: numpy arrays above glibc's
                        # 128 kB mmap threshold page-fault on every allocation (~4x slower)
_KERNEL_CHUNK = 8192     # segments per chunk of the compiled loop (its arrays are per entry)
_BLOCK_DECAY = 600.0     # max decay exponent inside one scan block (exp overflow guard)


# =================================================================================================
# events -> segments
# =================================================================================================

def _corners(schedule: PulseSchedule):
    """Corner times of every pulse's trapezoid, exactly as netlist.pwl_points writes them."""
    h = schedule.t_rise / 2.0
    t0, w = np.asarray(schedule.t_on, float), np.asarray(schedule.width, float)
    return t0 - h, t0 + h, t0 + w - h, t0 + w + h


def _edge_levels(T, corners, pe, ke, rise):
    """Trapezoid level (0..1) at both ends of segment ke on the rising (``rise``) or falling
    edge of pulse pe; exact 0 / 1 on the corners because T holds the corner times bit for bit
    ((tB - tA)/(tB - tA) == 1)."""
    tA, tB, tC, tD = corners
    Tk, Tk1 = T[ke], T[ke + 1]
    tAe, tDe = tA[pe], tD[pe]
    up_d, dn_d = tB[pe] - tAe, tDe - tC[pe]
    th0 = np.where(rise, (Tk - tAe) / up_d, (tDe - Tk) / dn_d)
    th1 = np.where(rise, (Tk1 - tAe) / up_d, (tDe - Tk1) / dn_d)
    return th0, th1


def _read_segments(in_read, ke, k0, k1):
    """Indices (in the chunk [k0, k1)) of its read segments; a write pulse in a read slot
    (``ke``: the segments of the chunk's write entries) is refused."""
    kr = np.flatnonzero(in_read[k0:k1])
    if kr.size and np.any(in_read[ke]):
        raise InputError("schedule: a write pulse overlaps a read slot; fix: build the "
                         "schedule with schedule.reserve_reads")
    return kr


def _kernel_entries(T, corners, xbar, amp, x_nodes, pe, ke, seg, rise, is_ramp, rows, lv):
    """The chunk's (segment, pulse) entries for twin_kernel.chain_segments, sorted by segment:
    (seg, row, level, kind, index into Hpart, Hpart (P, N, SQ)); the currents of edges cut by
    other corners (PART) at the quadrature nodes come from the Crossbar here."""
    kind = np.full(ke.size, FLAT, np.int64)
    part_idx = np.zeros(ke.size, np.int64)
    Hpart = np.zeros((0, xbar.n, x_nodes.size))
    er = np.flatnonzero(is_ramp)
    if er.size:
        th0, th1 = _edge_levels(T, corners, pe[er], ke[er], rise[er])
        up = (th0 == 0.0) & (th1 == 1.0)
        dn = (th0 == 1.0) & (th1 == 0.0)
        kind[er] = np.where(up, RISE, np.where(dn, FALL, PART))
        part = ~(up | dn)
        if part.any():
            ep, t0p, t1p = er[part], th0[part], th1[part]
            vnode = amp[pe[ep], None] * (t0p[:, None] + (t1p - t0p)[:, None] * x_nodes[None])
            hp = xbar.H(np.repeat(rows[ep], x_nodes.size), vnode.ravel())
            Hpart = np.ascontiguousarray(hp.reshape(ep.size, x_nodes.size, xbar.n).transpose(0, 2, 1))
            part_idx[ep] = np.arange(ep.size)
    o = np.argsort(seg, kind="stable")
    return seg[o], rows[o], lv[o], kind[o], part_idx[o], Hpart


# =================================================================================================
# chaining the segment maps
# =================================================================================================

def _scan(A, beta, w0, want, C=None, out=None):
    """Chain w_{k+1} = exp(-A_k) w_k + beta_k (A, beta: (D, K)) from w0 (D,).

    Returns (w after the maps listed in ``want`` (sorted indices, (D, len)), w after the last).
    Closed form of the chain: w_k = e^{-C_k} (w0 + sum_{j<k} beta_j e^{C_{j+1}}), C the running
    sum of A (``C`` may be passed precomputed). Blocked: inside a block the accumulated decay
    stays below _BLOCK_DECAY so exp() cannot overflow; a single segment with a larger decay is
    applied directly. The inner sums are taken only between the wanted indices (reduceat).
    ``out``: a (D, len(want)) array to write the wanted states into."""
    D, K = A.shape
    got = np.empty((D, want.size)) if out is None else out
    if C is None:
        C = np.cumsum(A, axis=1)
    w = w0.copy()
    start = 0
    while start < K:
        base = C[:, start - 1] if start > 0 else np.zeros(D)
        if start == 0 and C[:, -1].max() <= _BLOCK_DECAY:
            n = K                                              # the usual case: one block
        else:
            M = np.maximum.accumulate(np.max(C[:, start:] - base[:, None], axis=0))
            n = max(1, int(np.searchsorted(M, _BLOCK_DECAY, side="right")))
        lo, hi = np.searchsorted(want, [start, start + n])
        sel = want[lo:hi] - start
        if n == 1:
            w = np.exp(-A[:, start]) * w + beta[:, start]
            got[:, lo:hi] = w[:, None]
        elif sel.size == n:                                    # every segment end wanted
            er = np.exp(C[:, start:start + n] - base[:, None] if start else C[:, :n])
            s = beta[:, start:start + n] * er                  # in place: the chunk's
            np.cumsum(s, axis=1, out=s)                        # largest arrays
            s += w[:, None]
            np.divide(s, er, out=got[:, lo:hi])
            w = got[:, hi - 1].copy()
        else:
            rel = C[:, start:start + n] - base[:, None]
            terms = beta[:, start:start + n] * np.exp(rel)
            ends = np.r_[sel, n - 1]                           # sorted, maybe repeated
            keep = np.r_[ends[1:] != ends[:-1], True]
            inv = np.cumsum(keep) - keep                       # index of each end in ends[keep]
            ends = ends[keep]
            starts = np.r_[0, ends[:-1] + 1]
            S = np.cumsum(np.add.reduceat(terms, starts, axis=1), axis=1)   # sums to each end
            Sw = S[:, inv[:-1]]
            got[:, lo:hi] = np.exp(-rel[:, sel]) * (w[:, None] + Sw)
            w = np.exp(-rel[:, -1]) * (w + S[:, -1])
        start += n
    return got, w


# =================================================================================================
# engine
# =================================================================================================

def run_twin(mapping: CircuitMapping, schedule: PulseSchedule, cfg: Config,
             sample_times, w0: float | None = None, draws=None, compiled: bool = True) -> dict:
    """State-device values at ``sample_times`` (M,) s for the deck build_deck(mapping, schedule,
    cfg) describes: ``{"w_plus": (M, N), "w_minus": (M, N)}`` (same meaning as
    ``pipeline.simulate(prep).w_plus / .w_minus``). Times after the stream end read the end
    value (as the raw-file interpolation does); t <= 0 reads w_rest. ``draws``: the sample's
    hardware.variation.SampleDraws (write noise). ``compiled``: chain the segments with the
    compiled loop (:mod:`.twin_kernel`) where it applies (the rows superpose); False: the NumPy
    maps and prefix scan everywhere (the two are compared by the tests).
    Raises ConfigError (see :func:`check_supported`) for configurations the twin does not
    reproduce.
    """
    check_supported(cfg)
    st = np.asarray(sample_times, float).ravel()
    N, R = mapping.n_states, mapping.n_inputs
    if schedule.n_rows != R:
        raise InputError(f"schedule: field 'n_rows': {schedule.n_rows} rows but the mapping has {R} "
                         f"inputs; fix: build the mapping and the schedule from the same [events] config")
    tstop = float(schedule.duration)
    dev = _Devices(mapping, cfg)
    amp = np.asarray(schedule.amplitude, float) * float(mapping.v_in)
    rows_p = np.asarray(schedule.row, np.int64)
    xbar = Crossbar(mapping, cfg)
    # sinh write: the soft threshold tanh((V - vth)/vs) is crossed within an edge: 6 nodes per
    # sub-interval (dvs-bars state error 5e-6 instead of 3e-5); with the window w can also relax
    # within one edge (a*t_rise ~ 1): 4 sub-intervals (1 V single-row drive: 7e-7 on w instead
    # of 4e-5 with 2 x 4)
    if dev.p.mode == "sinh" and dev.win:
        rule = _gl_rule(2 * _RAMP_SUB, _RAMP_Q)
    elif dev.p.mode == "sinh":
        rule = _gl_rule(_RAMP_SUB, _RAMP_Q + 2)
    else:
        rule = _gl_rule(_RAMP_SUB, _RAMP_Q)
    x_nodes = rule[0]
    SQ = x_nodes.size

    # level tables: H at each full level, and at the nodes of a full rising / falling edge
    levels, lv_p = sorted_unique(amp, inverse=True)
    if xbar.separable:
        Hlev, Hramp = xbar.level_tables(levels, x_nodes)

    # global time axis: every PWL corner, every sample time, 0 and the stream end
    tA, tB, tC, tD = _corners(schedule)
    st_c = np.clip(st, 0.0, tstop)
    reading = cfg.read.mode == "pulse" and schedule.reads.size > 0
    r_pts = np.zeros((0, 2))
    if reading:   # read pulses: +v_read on both devices of every pair (netlist.driver_lines)
        r_on, r_w = schedule.read_corners()
        h = schedule.t_rise / 2
        r_pts = np.array(sorted({(t, v) for a, b in zip(r_on, r_w) for t, v in
                                 ((a - h, 0.0), (a + h, 1.0), (a + b - h, 1.0), (a + b + h, 0.0))}))
        r_pts[:, 1] *= cfg.read.v_read
    T = sorted_unique(np.concatenate([[0.0, tstop], tA, tB, tC, tD, st_c[st_c > 0], r_pts[:, 0]]))
    K = T.size - 1
    if reading:
        r_lev = np.interp(T, r_pts[:, 0], r_pts[:, 1], left=0.0, right=0.0)   # exact on corners
        in_read = (r_lev[:-1] > 0) | (r_lev[1:] > 0)
        read_maps = StateReadMaps(dev)
    # energy accounting (engines.twin_energy): the device energies from the same pieces
    acc = StateEnergy(dev, read_maps if reading else None, rule) if cfg.energy.accounting else None
    # write noise: the factor of the write interval holding each segment (1 outside them,
    # where every row is at 0 V), as the deck's Vwn<n> sources
    noise = interval_factors(schedule, draws)
    if noise is not None:
        mid = (T[:-1] + T[1:]) / 2
        b_ = np.searchsorted(noise[0], mid, side="right") - 1
        inside = (b_ >= 0) & (mid < noise[1][np.maximum(b_, 0)])
        m_seg = np.where(inside, noise[2][np.maximum(b_, 0)].T, 1.0)       # (N, K)
    i0, i1, i2, i3 = np.searchsorted(T, np.stack([tA, tB, tC, tD]))
    order = np.argsort(i0, kind="stable")                # pulses by first segment
    i0s = i0[order]
    span = int(np.max(i3 - i0)) if i3.size else 0

    # sample i reads the state after segment s_idx[i] - 1 (s_idx = 0: the initial state);
    # samples are processed in time order and put back in the caller's order at the end
    s_ord = np.argsort(st_c, kind="stable")
    s_idx = np.searchsorted(T, st_c[s_ord])
    start = dev.w_rest if w0 is None else float(w0)   # w0: every device's state at t = 0
    out = np.full((2 * N, st.size), start)
    w = np.full(2 * N, start)
    fast = compiled and xbar.separable
    if fast:                                   # only O(chunk) entry arrays: larger chunks
        chunk = _KERNEL_CHUNK
        par = device_params(dev)
        it_u, tg = sorted_unique(dev.inv_tau, inverse=True)
        tables = drive_tables(dev, Hlev, Hramp, rule, noise is not None,
                              xbar.key + (levels.tobytes(),))
        rate = np.ones(2 * N) if dev.rate is None else np.ascontiguousarray(dev.rate, float)
        m_all = np.ascontiguousarray(m_seg) if noise is not None else np.ones((N, 1))
    else:
        chunk = max(64, _ARRAY_BYTES // (16 * N))        # (2N, chunk) float arrays
        lean = dev.win == 0.0 and dev.p.mode == "linear"     # ramp maps: (N, SQ, .) arrays only
        rblock = max(16, _ARRAY_BYTES // ((8 if lean else 16) * N * SQ))
    for k0 in range(0, K, chunk):
        k1 = min(K, k0 + chunk)
        nk = k1 - k0
        # --- (segment, pulse) entries of the pulses touching segments [k0, k1)
        lo = np.searchsorted(i0s, k0 - span, side="left")
        hi = np.searchsorted(i0s, k1, side="left")
        cand = order[lo:hi]
        cand = cand[i3[cand] > k0]
        a_ = np.maximum(i0[cand], k0)
        cnt = np.minimum(i3[cand], k1) - a_
        pe = np.repeat(cand, cnt)
        ke = np.repeat(a_ - np.cumsum(cnt) + cnt, cnt) + np.arange(int(cnt.sum()))
        rise = ke < i1[pe]
        is_ramp_e = rise | (ke >= i2[pe])
        re, lve = rows_p[pe], lv_p[pe]
        seg = ke - k0
        dt = T[k0 + 1:k1 + 1] - T[k0:k1]
        sel = np.arange(*np.searchsorted(s_idx, (k0, k1), side="right"))   # s_idx is sorted
        if fast:
            want = s_idx[sel] - k0                       # boundaries 1..nk
            got = np.empty((2 * N, want.size))
            ent = _kernel_entries(T, (tA, tB, tC, tD), xbar, amp, x_nodes, pe, ke, seg, rise,
                                  is_ramp_e, re, lve)
            kr = _read_segments(in_read, ke, k0, k1) if reading else np.zeros(0, np.int64)
            rmap = np.full(nk if kr.size else 0, -1, np.int64)
            rmap[kr] = np.arange(kr.size)
            r0, r1 = (r_lev[k0 + kr], r_lev[k0 + kr + 1]) if kr.size else (None, None)
            ra, rb = read_maps(r0, r1, dt[kr], log=False) if kr.size else (np.zeros((0, 0)),) * 2
            wr0, wr1 = np.empty((2 * N, kr.size)), np.empty((2 * N, kr.size))
            write = chain_segments(dt, *ent, Hlev, Hramp, *tables, dev.r_tia, dev.offset, m_all,
                                   noise is not None, k0, par, dev.inv_tau, tg, it_u, rate, x_nodes,
                                   rule[2], rule[3], rule[6], rule[4], acc is not None, rmap,
                                   ra, rb, wr0, wr1, w, want, got)
            if acc is not None:
                acc.write += write
                if kr.size:
                    e_write, e_read = acc.read_energy(wr0, wr1, r0, r1, dt[kr])
                    acc.write += e_write
                    acc.read += e_read
            out[:, s_ord[sel]] = got
            continue
        ramp_seg = np.zeros(nk, bool)
        ramp_seg[seg[is_ramp_e]] = True
        flat_seg = ~ramp_seg

        # --- column-pair currents: flat entries sit at theta = 1 (constant per segment)
        fl = ~is_ramp_e
        if xbar.separable:
            sf = seg[fl]
            if levels.size == 1:                  # active-row mask (a row is in one pulse at a time)
                act = np.zeros((nk, R))
                act[sf, re[fl]] = 1.0
                I0 = (act @ Hlev[0]).T                              # (N, nk)
            else:
                hv = Hlev[lve[fl], re[fl]]                          # (Ef, N)
                I0 = np.stack([np.bincount(sf, weights=hv[:, n], minlength=nk) for n in range(N)])
        else:
            U0 = np.zeros((nk, R))
            np.add.at(U0, (seg[fl], re[fl]), amp[pe[fl]])
            I0 = np.zeros((N, nk))
        A = np.empty((2 * N, nk))
        beta = np.empty((2 * N, nk))
        if not xbar.separable:
            I0[:, flat_seg] = xbar.net.currents(U0[flat_seg]).T
        m_k = None if noise is None else m_seg[:, k0:k1]
        V_flat = dev.drive(I0[:, flat_seg], None if m_k is None else m_k[:, flat_seg])
        flat_k = np.flatnonzero(flat_seg)
        A[:, flat_k], beta[:, flat_k], f_flat = _flat_maps(dev, V_flat, dt[flat_k])
        if ramp_seg.any():
            kr = np.flatnonzero(ramp_seg)
            pos = np.full(nk, -1)
            pos[kr] = np.arange(kr.size)
            er = np.flatnonzero(is_ramp_e)
            er = er[np.argsort(pos[seg[er]], kind="stable")]      # ramp entries by segment
            pe_r = pos[seg[er]]
            th0, th1 = _edge_levels(T, (tA, tB, tC, tD), pe[er], ke[er], rise[er])
            if not xbar.separable:
                vnode = amp[pe[er], None] * (th0[:, None] + (th1 - th0)[:, None]
                                             * x_nodes[None])                # (Er, SQ)
                bounds = np.searchsorted(pe_r, np.arange(0, kr.size + rblock, rblock))
                for j, b0 in enumerate(range(0, kr.size, rblock)):
                    b1 = min(kr.size, b0 + rblock)
                    e0, e1 = bounds[j], bounds[j + 1]
                    kb = kr[b0:b1]
                    Un = np.repeat(U0[kb][:, None, :], SQ, axis=1)        # (B, SQ, R)
                    np.add.at(Un, (pe_r[e0:e1] - b0, slice(None), re[er[e0:e1]]), vnode[e0:e1])
                    In = xbar.net.currents(Un.reshape(-1, R)).reshape(b1 - b0, SQ, N)
                    Vn = dev.drive(In.transpose(2, 1, 0), None if m_k is None else m_k[:, None, kb])
                    A[:, kb], beta[:, kb] = _ramp_maps(dev, Vn, dt[kb], rule)
                    if acc is not None:
                        acc.ramp(kb, Vn, dt[kb])
            else:
                up = (th0 == 0.0) & (th1 == 1.0)
                dn = (th0 == 1.0) & (th1 == 0.0)
                Hn = Hramp[lve[er], re[er], dn.astype(np.int64)]           # (Er, N, SQ)
                part = ~(up | dn)
                if part.any():                                          # edges cut by other corners
                    ep, t0p, t1p = er[part], th0[part], th1[part]
                    vnode = amp[pe[ep], None] * (t0p[:, None] + (t1p - t0p)[:, None] * x_nodes[None])
                    hp = xbar.H(np.repeat(re[ep], SQ), vnode.ravel()).reshape(ep.size, SQ, N)
                    Hn[part] = hp.transpose(0, 2, 1)
                Hn = Hn.reshape(er.size, N * SQ)
                if er.size > kr.size:                          # overlapping edges: add
                    # entries are sorted by segment and every ramp segment has one: the first
                    # entry of each segment, in order, is that segment's row (np.add.reduceat
                    # along axis 0 is ~10x slower than this)
                    first = np.ones(er.size, bool)
                    first[1:] = pe_r[1:] != pe_r[:-1]
                    rest = ~first
                    Hr = Hn[rest]
                    Hn = Hn[first]
                    np.add.at(Hn, pe_r[rest], Hr)
                for j, b0 in enumerate(range(0, kr.size, rblock)):
                    b1 = min(kr.size, b0 + rblock)
                    In = Hn[b0:b1]
                    kb = kr[b0:b1]
                    In = In.reshape(b1 - b0, N, SQ).transpose(1, 2, 0) + I0[:, None, kb]   # (N, SQ, B)
                    Vn = dev.drive(In, None if m_k is None else m_k[:, None, kb])
                    A[:, kb], beta[:, kb] = _ramp_maps(dev, Vn, dt[kb], rule)
                    if acc is not None:
                        acc.ramp(kb, Vn, dt[kb])
        if reading:
            kr = _read_segments(in_read, ke, k0, k1)
            if kr.size:
                A[:, kr], beta[:, kr] = read_maps(r_lev[k0 + kr], r_lev[k0 + kr + 1], dt[kr])
                if acc is not None:
                    acc.reads(kr, r_lev[k0 + kr], r_lev[k0 + kr + 1], dt[kr])
        # window off: A = dt/tau for every device, so its running sum is an outer product
        C = np.outer(dev.inv_tau, np.cumsum(dt)) if dev.win == 0.0 else None
        if acc is not None:                  # w at every segment end: the samples are among them
            w_all = np.empty((2 * N, nk + 1))                # w at every segment boundary
            w_all[:, 0] = w
            _scan(A, beta, w, np.arange(nk), C, out=w_all[:, 1:])
            fk, Vf, ff = flat_k, V_flat, f_flat
            if reading:     # read segments carry their own energy (acc.reads), not the idle
                keep = ~in_read[k0 + flat_k]                 # driver's as well
                fk, Vf, ff = flat_k[keep], V_flat[:, keep], f_flat[:, keep]
            acc.chunk(w_all, fk, Vf, ff, dt)
            got, w = w_all[:, s_idx[sel] - k0], w_all[:, -1].copy()
        else:
            got, w = _scan(A, beta, w, s_idx[sel] - k0 - 1, C)
        out[:, s_ord[sel]] = got
    res = {"w_plus": out[:N].T.copy(), "w_minus": out[N:].T.copy(), "energy": None}
    if acc is not None:
        res["energy"] = {"crossbar_J": state_crossbar_energy(xbar, schedule, mapping.v_in),
                         "write_J": acc.write, "read_J": acc.read}
    if reading:   # sensed pair currents / ((g_on - g_off) rd(v_read)), as the deck's DeckInfo
        rd = cfg.read
        d = cfg.device
        at = np.interp(st, r_pts[:, 0], r_pts[:, 1], left=0.0, right=0.0)[:, None]
        if not dev.offset.any():
            ratio = sinh_read(at, d.read_nl) / sinh_read(rd.v_read, d.read_nl)
            res["sensed"] = (res["w_plus"] - res["w_minus"]) * ratio
        else:   # the drivers' offsets: the two devices of a pair see v_read +- offset
            idle = read_maps.v0[:N, 0]
            g = lambda w: d.g_off + (d.g_on - d.g_off) * w     # noqa: E731 (G(w), as vmem.lib)
            i_pm = g(res["w_plus"]) * sinh_read(at + idle, d.read_nl) - \
                g(res["w_minus"]) * sinh_read(at - idle, d.read_nl)
            res["sensed"] = i_pm / ((d.g_on - d.g_off) * sinh_read(rd.v_read, d.read_nl))
    return res


class TwinEngine:
    """The circuit twin: the same `state` circuit as the ngspice deck, solved exactly per
    segment between pulse edges in NumPy (no simulator process)."""

    name = "twin"
    in_process = True
    dense_waveforms = False

    def check(self, cfg: Config) -> None:
        check_supported(cfg)

    def run(self, prep, *, keep_waveforms: bool = False, workdir=None) -> EngineRun:
        # keep_waveforms: the twin computes the states at the sample times only (no dense
        # traces); `simulate --waveforms --engine twin` is refused in the CLI
        t0 = time.perf_counter()
        if prep.cfg.circuit.topology == "trace":
            check_supported(prep.cfg)
            out = run_twin_trace(prep.mapping, prep.schedule, prep.cfg, prep.sample_times,
                                 draws=prep.draws)
            return EngineRun(engine=self.name, w_plus=None, w_minus=None, sensed=out["sensed"],
                             w_trace=out["w_trace"], version=f"cimspice {__version__}",
                             elapsed_s=time.perf_counter() - t0, energy=out["energy"])
        out = run_twin(prep.mapping, prep.schedule, prep.cfg, prep.sample_times, draws=prep.draws)
        return EngineRun(engine=self.name, w_plus=out["w_plus"], w_minus=out["w_minus"],
                         sensed=out.get("sensed"), version=f"cimspice {__version__}",
                         elapsed_s=time.perf_counter() - t0, energy=out["energy"])
