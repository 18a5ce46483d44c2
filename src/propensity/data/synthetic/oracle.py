"""The oracle: the true probability that a lead closes won within the horizon after a cutoff.

:func:`oracle_probability` knows what the story knows at a cutoff ``T`` for a lead
created at ``c`` (age ``s = T - c`` days): its latents (fit ``f``, interest ``z``,
in-market probability ``p``, win probability ``q``), the story's distributions and
the lead's events *observable* at ``T`` (``occurred_at < T`` and ``recorded_at < T``,
what the features see). A snapshot row exists only while the lead has no
opportunity, so the story also knows ``O >= T`` when the lead is in market.

Derivation
----------
Hidden state: not in market (``H0``, prior ``1 - p``) or in market with buying
moment ``O = c + G``, ``G ~ Gamma(GAMMA_SHAPE, GAMMA_SCALE)`` (``H1(O)``, prior
density ``p g(O - c)``). Given the state, each activity type is an independent
Poisson process; recording thins it independently: an event ``x`` days before ``T``
is observable with probability ``r(x) = 1 - BACKFILL_RATE * phi(x)``, ``phi(x)`` the
chance a U(1, 30)-day recording delay is at least ``x``. The observed events form a
Poisson process of intensity ``lambda(t) r(T - t)``, with likelihood
``prod_i lambda(t_i) r(T - t_i) * exp(-integral lambda r)``.

- Background intensity ``b_k(t) = BACKGROUND_RATE[k] * scale * exp(a_k z - a_k^2/2 +
  FIT_LOADING f) * w(t)`` (``w``: the daily seasonal weight; x2 for the mechanics
  drift's signal from its date on), plus the source event (one event 1-10 minutes
  after creation, counted as an intensity of 1/(9 minutes) in that window), is the
  same under every state: it cancels from the posterior.
- Under ``H1(O)`` the ramp adds ``rho_k(t; O) = RAMP_EVENTS[k] * scale * tri(t; O)``
  with ``tri = 2 (t - O + RAMP_DAYS) / RAMP_DAYS^2`` on ``[O - RAMP_DAYS, O)`` and
  ``t > c`` (none for the mechanics drift's signal from its date on). Relative to
  background alone its likelihood is

      LR(O) = prod_{observed ramp-type events i} (1 + rho_k(t_i; O) / (b_k(t_i) + src_k(t_i)))
              * exp(-sum_k integral_c^T rho_k(t; O) r(T - t) dt),

  which is 1 when ``O >= T + RAMP_DAYS``. The integral is exact: ``tri`` is linear
  and ``phi`` piecewise linear in ``x = T - t``.
- Under ``H0`` the lead unsubscribes with probability ``u = sigmoid(UNSUB_A +
  UNSUB_B z)`` at ``U = c + Exp(UNSUB_MEAN_DAYS)``, then has no email events. An
  observed unsubscribe proves ``H0``: the probability is 0. Otherwise, relative to
  background alone (emails never stopping):

      A0 = 1 - u + u e^{-s/150} + u integral_{U_lo}^T (e^{-(U-c)/150}/150) BACKFILL_RATE phi(T-U)
                                                      exp(integral_U^T e(t) r(T-t) dt) dU,

  the last term for an unsubscribe at ``U < T`` not yet recorded (``e``: the email
  types' background intensity, whose events after ``U`` are missing;
  ``U_lo = max(c, last observed email)``).
- A deal of an in-market lead is created at ``O`` and closes at ``O + D``,
  ``D ~ U(CLOSE_MIN_DAYS, CLOSE_MAX_DAYS)``, won with probability ``q`` (never before
  ``wins_from`` in the late-wins drift; times ``win_factor`` when it closes from
  ``drift_at`` on in the win-rate drift). The label is a win with ``T <= O + D < T + h``:

      P = p q integral_T^inf g(O - c) LR(O) W(O) dO
          / ((1 - p) A0 + p integral_T^inf g(O - c) LR(O) dO),
      W(O) = P(L <= O + D < M) + win_factor P(M <= O + D < T + h),
      L = max(T, wins_from), M = min(max(L, drift_at), T + h)   (M = T + h without win-rate).

The base-rate, mix, landing-page, origin and in-market-shift options act through
each lead's ``p`` (kept in the ground truth) and need nothing more here.

Numerics: ``O`` is integrated by the midpoint rule on a grid of ``GRID_DAYS`` (0.25
day) from ``T`` to ``T + max(RAMP_DAYS, h)``, the denominator's tail beyond
``T + RAMP_DAYS`` in closed form (``LR = 1`` there); the unsubscribe term on the same
step. Per row, a Numba kernel walks the lead's events once, then the grid. The only
approximations are this grid and the source event's window intensity; the tests
compare against a Monte-Carlo posterior written independently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from propensity.core.jit import compiled
from propensity.core.times import DAY_US
from propensity.data.export import CrmExport, read_export
from propensity.data.synthetic.hazards import Hazards, Timeline
from propensity.data.synthetic.story import (
    ACTIVITY_TYPES,
    BACKFILL_MAX_DAYS,
    BACKFILL_MIN_DAYS,
    BACKFILL_RATE,
    BACKGROUND_RATE,
    CLOSE_MAX_DAYS,
    CLOSE_MIN_DAYS,
    EMAIL_TYPES,
    FIT_LOADING,
    GAMMA_SCALE,
    GAMMA_SHAPE,
    LEAD_SOURCES,
    MECHANICS_BACKGROUND_FACTOR,
    RAMP_DAYS,
    RAMP_EVENTS,
    SOURCE_EVENT,
    TYPE_INDEX,
    UNSUB_A,
    UNSUB_B,
    UNSUB_MEAN_DAYS,
    Z_LOADING,
    Season,
)

__all__ = ["GRID_DAYS", "oracle_probability", "true_probability", "world_hazards"]

GRID_DAYS = 0.25
SOURCE_WINDOW_DAYS = (1.0 / 1440.0, 10.0 / 1440.0)  # the source event: 1-10 minutes after creation


def world_hazards(truth: pd.DataFrame) -> tuple[str, str, Hazards]:
    """``(start, end, hazards)`` of the world a ground truth belongs to (a world written before they were kept:
    the default span, no hazard)."""
    meta = dict(truth.attrs.get("world") or {})
    start, end = meta.pop("start", "2024-01-01"), meta.pop("end", "2026-01-01")
    return str(start), str(end), Hazards.model_validate(meta)


def oracle_probability(world: str | Path | CrmExport | Mapping[str, pd.DataFrame], rows: pd.DataFrame,
                       horizon_days: float, truth: pd.DataFrame | None = None) -> np.ndarray:
    """The true probability of closing won in ``[cutoff, cutoff + horizon_days)``, per row (``lead_id, cutoff``).

    ``world`` is a world folder (:func:`~propensity.data.synthetic.write_world`), its
    :class:`CrmExport`, or the tables :func:`~propensity.data.synthetic.generate_world`
    returned; ``truth`` is its ground truth (default: ``ground_truth.parquet`` of the
    folder). Every row's lead must have no opportunity created before its cutoff (as
    training and test snapshots do): the oracle conditions on that.
    """
    if isinstance(world, (str, Path)):
        folder = Path(world)
        export = read_export(folder)
        leads, acts = export.leads, export.activities
    elif isinstance(world, CrmExport):
        folder = Path(world.source)
        leads, acts = world.leads, world.activities
    else:
        folder = None
        leads, acts = world["leads"], world["activities"]
    if truth is None:
        if folder is None or not (folder / "ground_truth.parquet").is_file():
            raise ValueError("oracle_probability: no ground truth given and none found next to the export")
        truth = pd.read_parquet(folder / "ground_truth.parquet")
    start, end, hz = world_hazards(truth)
    line = Timeline.of(start, end, hz)
    start_us = int(line.start.value // 1000)
    gt = truth.reset_index(drop=True)
    ids = pd.Index(gt["lead_id"].astype(str))
    pos = ids.get_indexer(rows["lead_id"].astype(str))
    if (pos < 0).any():
        bad = rows["lead_id"][pos < 0].head(3).tolist()
        raise ValueError(f"oracle_probability: lead_id(s) not in the ground truth, e.g. {bad}")

    def days(values: Any) -> np.ndarray:
        us = pd.to_datetime(values, utc=True).to_numpy("datetime64[us]").astype(np.int64)
        return (us - start_us) / DAY_US

    cut = days(rows["cutoff"])
    created = days(gt["created_at"])

    # the lead's source-event type, from the leads table (the mix drift redraws sources)
    event_of_source = np.array([TYPE_INDEX.get(SOURCE_EVENT.get(str(s), ""), -1) for s in LEAD_SOURCES])
    lead_src = pd.Index(LEAD_SOURCES).get_indexer(leads["lead_source"].astype(str))
    src_kind = np.full(len(gt), -1, dtype=np.int64)
    lp = ids.get_indexer(leads["lead_id"].astype(str))
    ok = (lp >= 0) & (lead_src >= 0)
    src_kind[lp[ok]] = event_of_source[lead_src[ok]]

    # the events that move the posterior: ramp types, emails, unsubscribes; grouped by lead, by time
    kinds = pd.Index(ACTIVITY_TYPES).get_indexer(acts["activity_type"].astype(str))
    ev_lead = ids.get_indexer(acts["lead_id"].astype(str))
    relevant = np.zeros(len(ACTIVITY_TYPES), dtype=bool)
    relevant[[TYPE_INDEX[k] for k in RAMP_EVENTS]] = True
    relevant[list(EMAIL_TYPES)] = True
    relevant[TYPE_INDEX["unsubscribe"]] = True
    keep = (ev_lead >= 0) & (kinds >= 0)
    keep[keep] = relevant[kinds[keep]]
    ev_t, ev_rec = days(acts["occurred_at"])[keep], days(acts["recorded_at"])[keep]
    ev_lead, kinds = ev_lead[keep], kinds[keep]
    order = np.lexsort((ev_t, ev_lead))
    ev_lead, kinds, ev_t, ev_rec = ev_lead[order], kinds[order], ev_t[order], ev_rec[order]
    ptr = np.zeros(len(gt) + 1, dtype=np.int64)
    np.cumsum(np.bincount(ev_lead, minlength=len(gt)), out=ptr[1:])

    season = Season(line.start, line.span)
    weight = np.diff(season.cum) / np.diff(season.edges)
    z = gt["interest"].to_numpy(np.float64)
    f = gt["fit"].to_numpy(np.float64)
    loading = np.zeros(len(ACTIVITY_TYPES))
    rate = np.zeros(len(ACTIVITY_TYPES))
    ramp = np.zeros(len(ACTIVITY_TYPES))
    for k, r in BACKGROUND_RATE.items():
        rate[TYPE_INDEX[k]] = r * hz.activity_scale
        loading[TYPE_INDEX[k]] = Z_LOADING[k]
    for k, m in RAMP_EVENTS.items():
        ramp[TYPE_INDEX[k]] = m * hz.activity_scale
    is_email = np.zeros(len(ACTIVITY_TYPES), dtype=bool)
    is_email[list(EMAIL_TYPES)] = True
    signal = TYPE_INDEX[hz.drift_signal] if "mechanics" in hz.drift else -1

    s_plus = np.maximum(cut - created[pos], 0.0) + RAMP_DAYS
    tail = stats.gamma.sf(s_plus, GAMMA_SHAPE, scale=GAMMA_SCALE)
    params = np.array([GAMMA_SHAPE, GAMMA_SCALE, RAMP_DAYS, BACKFILL_RATE, BACKFILL_MIN_DAYS, BACKFILL_MAX_DAYS,
                       CLOSE_MIN_DAYS, CLOSE_MAX_DAYS, UNSUB_A, UNSUB_B, UNSUB_MEAN_DAYS, FIT_LOADING,
                       MECHANICS_BACKGROUND_FACTOR, line.drift_day, line.wins_day, float(horizon_days), GRID_DAYS,
                       SOURCE_WINDOW_DAYS[0], SOURCE_WINDOW_DAYS[1],
                       line.drift_day if "win-rate" in hz.drift else np.inf, hz.win_factor])
    out = np.empty(len(rows))
    _oracle_rows(pos.astype(np.int64), cut, tail, created, z, f, gt["p_in_market"].to_numpy(np.float64),
                 gt["p_win_if_opportunity"].to_numpy(np.float64), src_kind, ptr, kinds.astype(np.int64), ev_t,
                 ev_rec, weight, rate, loading, ramp, is_email, int(signal), TYPE_INDEX["unsubscribe"], params, out)
    return out


@compiled
def _record_integrals(x, bmin, bmax):
    """``(integral_0^x phi, integral_0^x y phi(y) dy)`` for phi = P(delay >= y), delay ~ U(bmin, bmax)."""
    a = min(x, bmin)
    i0, i1 = a, a * a / 2.0
    if x > bmin:
        y = min(x, bmax)
        w = bmax - bmin
        i0 += ((bmax * y - y * y / 2.0) - (bmax * bmin - bmin * bmin / 2.0)) / w
        i1 += ((bmax * y * y / 2.0 - y ** 3 / 3.0) - (bmax * bmin * bmin / 2.0 - bmin ** 3 / 3.0)) / w
    return i0, i1


@compiled
def _ramp_mass(x, d, ramp_days, beta, bmin, bmax):
    """integral_0^x tri r: the observable share of a ramp whose buying moment is ``d`` days after the cutoff,
    over the last ``x`` days before the cutoff."""
    if x <= 0.0:
        return 0.0
    a = 2.0 * (ramp_days - d) / ramp_days ** 2
    b = 2.0 / ramp_days ** 2
    i0, i1 = _record_integrals(x, bmin, bmax)
    return a * x - b * x * x / 2.0 - beta * (a * i0 - b * i1)


@compiled
def _phi(x, bmin, bmax):
    if x <= bmin:
        return 1.0
    if x >= bmax:
        return 0.0
    return (bmax - x) / (bmax - bmin)


@compiled
def _oracle_rows(row_lead, cut, tail, created, z, f, p_in, q, src_kind, ptr, kinds, ev_t, ev_rec, weight, rate,
                 loading, ramp, is_email, signal, unsub_kind, params, out):
    k_shape, k_scale, ramp_days, beta, bmin, bmax = params[0], params[1], params[2], params[3], params[4], params[5]
    dmin, dmax, ua, ub, umean, fit_loading = params[6], params[7], params[8], params[9], params[10], params[11]
    mech, drift_day, wins_day, h, step = params[12], params[13], params[14], params[15], params[16]
    src_lo, src_hi, win_day, win_factor = params[17], params[18], params[19], params[20]
    log_norm = -math.lgamma(k_shape) - k_shape * math.log(k_scale)
    ramp_total = 0.0
    for k in range(len(ramp)):
        ramp_total += ramp[k]
    n_days = len(weight)
    cap = 64
    win_x = np.empty(cap)
    win_k = np.empty(cap, dtype=np.int64)
    win_base = np.empty(cap)
    for r in range(len(row_lead)):
        i = row_lead[r]
        t_cut = cut[r]
        c = created[i]
        s = t_cut - c
        if s <= 0.0 or h <= dmin:
            out[r] = 0.0
            continue
        mult = np.empty(len(rate))
        for k in range(len(rate)):
            mult[k] = rate[k] * math.exp(loading[k] * z[i] - loading[k] * loading[k] / 2.0 + fit_loading * f[i])
        # the lead's observable events
        unsub = False
        last_email = -1e300
        n_win = 0
        for e in range(ptr[i], ptr[i + 1]):
            t = ev_t[e]
            if t >= t_cut:
                break
            if ev_rec[e] >= t_cut:
                continue
            k = kinds[e]
            if k == unsub_kind:
                unsub = True
                break
            if is_email[k]:
                last_email = t
            if ramp[k] > 0.0 and t >= t_cut - ramp_days:
                if k == signal and t >= drift_day:
                    continue  # no ramp there: the event cannot tell the states apart
                day = min(max(int(math.floor(t)), 0), n_days - 1)
                base = mult[k] * weight[day] * (mech if k == signal and t >= drift_day else 1.0)
                if k == src_kind[i] and t >= c + src_lo and t <= c + src_hi:
                    base += 1.0 / (src_hi - src_lo)
                if n_win == cap:
                    cap *= 2
                    nx, nk, nb_ = np.empty(cap), np.empty(cap, dtype=np.int64), np.empty(cap)
                    nx[:n_win], nk[:n_win], nb_[:n_win] = win_x[:n_win], win_k[:n_win], win_base[:n_win]
                    win_x, win_k, win_base = nx, nk, nb_
                win_x[n_win] = t_cut - t
                win_k[n_win] = k
                win_base[n_win] = base
                n_win += 1
        if unsub:
            out[r] = 0.0
            continue
        # H0: no unsubscribe seen
        u = 1.0 / (1.0 + math.exp(-(ua + ub * z[i])))
        a0 = 1.0 - u + u * math.exp(-s / umean)
        u_lo = max(c, last_email, t_cut - bmax)
        n_u = int(math.ceil((t_cut - u_lo) / step)) if t_cut > u_lo else 0
        hidden = 0.0
        e_int = 0.0  # integral of the email background's observable intensity over [U, T)
        for j in range(n_u):
            x0 = j * step
            x1 = min((j + 1) * step, t_cut - u_lo)
            dx = x1 - x0
            xm = (x0 + x1) / 2.0
            tm = t_cut - xm
            day = min(max(int(math.floor(tm)), 0), n_days - 1)
            e_rate = 0.0
            for k in range(len(rate)):
                if is_email[k]:
                    e_rate += mult[k] * weight[day] * (mech if k == signal and tm >= drift_day else 1.0)
            e_mid = e_int + e_rate * (1.0 - beta * _phi(xm, bmin, bmax)) * dx / 2.0
            hidden += math.exp(-(tm - c) / umean) / umean * beta * _phi(xm, bmin, bmax) * math.exp(e_mid) * dx
            e_int += e_rate * (1.0 - beta * _phi(xm, bmin, bmax)) * dx
        a0 += u * hidden
        # H1: the buying moment on the grid
        lo = max(t_cut, wins_day)
        hi = t_cut + h
        reach = max(ramp_days, h - dmin)
        n_o = int(math.ceil(reach / step))
        num = 0.0
        den = 0.0
        for j in range(n_o):
            d0 = j * step
            d1 = min((j + 1) * step, reach)
            d = (d0 + d1) / 2.0
            width = d1 - d0
            o = t_cut + d
            age = o - c
            g = math.exp(log_norm + (k_shape - 1.0) * math.log(age) - age / k_scale)
            lr = 1.0
            if d < ramp_days:
                x_max = min(ramp_days - d, s)
                comp = ramp_total * _ramp_mass(x_max, d, ramp_days, beta, bmin, bmax)
                if signal >= 0 and t_cut > drift_day:
                    comp -= ramp[signal] * _ramp_mass(min(x_max, t_cut - drift_day), d, ramp_days, beta, bmin, bmax)
                log_lr = -comp
                for m in range(n_win):
                    x = win_x[m]
                    if x < ramp_days - d and x <= s:
                        tri = 2.0 * (ramp_days - d - x) / ramp_days ** 2
                        log_lr += math.log1p(ramp[win_k[m]] * tri / win_base[m])
                lr = math.exp(log_lr)
                den += g * lr * width
            w_hi = min(max((hi - o - dmin) / (dmax - dmin), 0.0), 1.0)
            w_lo = min(max((lo - o - dmin) / (dmax - dmin), 0.0), 1.0)
            mid = min(max(lo, win_day), hi)  # closes from here on are won at win_factor times q
            w_mid = min(max((mid - o - dmin) / (dmax - dmin), 0.0), 1.0)
            num += g * lr * ((w_mid - w_lo) + win_factor * (w_hi - w_mid)) * width
        den += tail[r]
        p = p_in[i]
        out[r] = min(max(p * q[i] * num / ((1.0 - p) * a0 + p * den), 0.0), 1.0)


def _gamma_cdf_integral(y: np.ndarray) -> np.ndarray:
    """Psi(y) = integral_0^y F(x) dx for the Gamma(GAMMA_SHAPE, GAMMA_SCALE) CDF F."""
    y = np.maximum(y, 0.0)
    k, th = GAMMA_SHAPE, GAMMA_SCALE
    return y * stats.gamma.cdf(y, k, scale=th) - k * th * stats.gamma.cdf(y, k + 1, scale=th)


def true_probability(ground_truth: pd.DataFrame, cutoffs: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """The latent prior of winning within the horizon, for rows (lead_id, cutoff): what the latents alone say.

    For each row, the probability under the plain story, knowing the lead's latent
    state (``p_in_market``, ``p_win_if_opportunity``, ``created_at``) but none of its
    events, that the lead has an opportunity closing won in ``[cutoff, cutoff +
    horizon)``, given that it had no opportunity before the cutoff:

        p q E_D[(G(s + h - D) - G(s))^+] / (1 - p G(s)),

    with ``s`` the lead's age in days at the cutoff, ``G`` the Gamma CDF of the time
    to the buying moment and ``D ~ U(7, 60)`` the close delay. The expectation over
    ``D`` is computed exactly via the integrated Gamma CDF (no grid error).
    ``cutoffs`` needs columns ``lead_id`` and ``cutoff`` (UTC timestamps). A model
    reading the intent ramp in the events beats it: the limit is
    :func:`oracle_probability`.
    """
    gt = ground_truth.reset_index(drop=True)
    pos = pd.Index(gt["lead_id"].astype(str)).get_indexer(cutoffs["lead_id"].astype(str))
    if (pos < 0).any():
        bad = cutoffs["lead_id"][pos < 0].head(3).tolist()
        raise ValueError(f"true_probability: lead_id(s) not in the ground truth, e.g. {bad}")
    created = pd.to_datetime(gt["created_at"], utc=True).to_numpy("datetime64[us]")[pos]
    cut = pd.to_datetime(cutoffs["cutoff"], utc=True).to_numpy("datetime64[us]")
    s = (cut - created).astype(np.int64) / DAY_US
    p = gt["p_in_market"].to_numpy(np.float64)[pos]
    q = gt["p_win_if_opportunity"].to_numpy(np.float64)[pos]
    h = float(horizon_days)
    m = min(CLOSE_MAX_DAYS, h)
    if m <= CLOSE_MIN_DAYS:
        return np.zeros(len(cutoffs))
    g_s = stats.gamma.cdf(np.maximum(s, 0.0), GAMMA_SHAPE, scale=GAMMA_SCALE)
    width = CLOSE_MAX_DAYS - CLOSE_MIN_DAYS
    window = (_gamma_cdf_integral(s + h - CLOSE_MIN_DAYS) - _gamma_cdf_integral(s + h - m)
              - (m - CLOSE_MIN_DAYS) * g_s) / width
    prob = p * q * np.maximum(window, 0.0) / (1.0 - p * g_s)
    return np.clip(prob, 0.0, 1.0)
