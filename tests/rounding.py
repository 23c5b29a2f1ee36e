"""Rounding bounds of the numeric tests, derived once here (``import rounding`` in a test).

Notation: u16 = 2^-11 is float16's unit roundoff (11-bit significand, round to nearest) in its
normal range |x| >= 2^-14; below it (subnormals, spacing 2^-24) the rounding error is at most
a16 = 2^-25 in absolute value. So every component of a float16-stored vector has
|fl16(x_i) - x_i| <= u16·|x_i| + a16. u32 = 2^-24 is float32's unit roundoff and
gamma_n = n·u32 / (1 - n·u32) bounds the error of a float32 dot product of n terms:
|fl(x·y) - x·y| <= gamma_n · Σ|x_i y_i| <= gamma_n · ‖x‖‖y‖ (Higham, Accuracy and Stability of
Numerical Algorithms, §3.1).
"""

from __future__ import annotations

import math

U16 = 2.0**-11
A16 = 2.0**-25
U32 = 2.0**-24
#: Slack for float64 aggregation (means, logsumexp) of values that are each within a bound:
#: relative float64 rounding of sums of O(1) values, far below any float32 / float16 effect.
F64_SLACK = 1e-12


def gamma(n: int, u: float = U32) -> float:
    return n * u / (1.0 - n * u)


def float16_similarity_bound(d: int, sides: int = 2, renormalised: bool = False) -> float:
    """max |s16 − s32| for a cosine s = q·p of two float32 unit vectors in R^d, computed (in
    float32) once from the vectors and once with ``sides`` of them (2: both, as
    ``--embedding-dtype float16`` does; 1: the query only) stored as float16 (``renormalised``:
    divided by their norm after reading, as the embedding cache does).

    The float32 vectors are unit length up to their own normalisation: ‖x‖ <= n = 1 + gamma_d.
    Storage: ‖fl16(x) − x‖₂ <= u16‖x‖ + a16·√d =: r (componentwise bound, triangle inequality).
    Renormalising x̃ = fl16(x) moves it by |1 − ‖x̃‖| <= (n − 1) + r more, plus float32 rounding of
    the norm (<= gamma_d): R = 2r + 2·gamma_d; without it R = r. A side stored as float32 but
    renormalised on read moves by at most 2·gamma_d. Exact arithmetic (Cauchy–Schwarz):
        |q̃·p̃ − q·p| <= |(q̃ − q)·p̃| + |q·(p̃ − p)| <= R_q(n + R_p) + n·R_p
    — for two float16 sides about 2·u16 = 2^-10, independent of d (not d·u16: Σ|q_i p_i| <=
    ‖q‖‖p‖ = 1). Each of the two float32 evaluations adds at most gamma_d·‖x‖‖y‖.
    """
    g = gamma(d)
    n = 1.0 + g
    r = U16 * n + A16 * math.sqrt(d)
    R = 2 * r + 2 * g if renormalised else r
    rq, rp = R, (R if sides == 2 else (2 * g if renormalised else 0.0))
    exact = rq * (n + rp) + n * rp
    return exact + g * (n * n + (n + rq) * (n + rp))


def float16_component_bound(d: int) -> float:
    """max |x̂_i − x_i| for a float32 unit vector x in R^d stored as float16 and renormalised on
    read (x̂ = x̃ / ‖x̃‖, x̃ = fl16(x)), componentwise. With ρ = r + gamma_d the deviation of ‖x̃‖
    from 1 (r as in :func:`float16_similarity_bound`) and |x_i| <= ‖x‖ <= 1 + gamma_d:
        |x̂_i − x_i| <= |x̃_i − x_i| / ‖x̃‖ + |x_i|·|1/‖x̃‖ − 1| <= (u16·|x_i| + a16 + |x_i|·ρ) / (1 − ρ)
    — about 2·u16 = 2^-10; plus float32 rounding of the division (u32)."""
    g = gamma(d)
    n = 1.0 + g
    rho = U16 * n + A16 * math.sqrt(d) + g
    return (U16 * n + A16 + n * rho) / (1 - rho) + U32 * 2


def metric_bounds(eps: float, tie: float, temperature: float, capacity_max: float) -> dict[str, float]:
    """Bounds on the per-pair / per-query / per-source numbers of ``shared/spec/ECI.md`` when every
    similarity (s_qn, s(q, p), s(p, n)) moves by at most ``eps``.

    * s_qp = min (or max) over positives and s_pn = max over positives are 1-Lipschitz: eps.
    * margin = s_qp − s_qn: 2·eps, plus the tie rule (|m| < ``tie`` → 0) which can move a margin
      by up to ``tie`` more: 2·eps + tie. Copies (min(m, 0)) are 1-Lipschitz.
    * S = max(0, mean s_qn): eps. Δ = max(0, min margin): 2·eps + tie.
    * DE = 2SΔ/(S + Δ): |∂DE/∂S| + |∂DE/∂Δ| = 2(S² + Δ²)/(S + Δ)² <= 2, so DE moves by at most
      2·max(|ΔS|, |ΔΔ|) = 2(2·eps + tie); ECI_q = C·DE with C = ln(K + 1) unchanged: C·2(2·eps + tie);
      ECI_arith_q = C·(S + Δ)/2: C·(3·eps + tie)/2.
    * I_NCE = ln(K + 1) − (logsumexp(z) − z_0), z = s / τ: logsumexp is 1-Lipschitz in the max
      norm, so |ΔI_NCE| <= eps/τ + eps/τ = 2·eps/τ (the 1/τ = 20 amplification).
    * Per source: means over queries, and bootstrap quantiles of resampled means (the same
      resamples: each replicate moves by at most the per-query bound, and order statistics and
      their interpolation are 1-Lipschitz in the max norm) keep the per-query bound; ECI uses
      the largest C.
    """
    margin = 2 * eps + tie
    out = {
        "s_qn": eps,
        "s_pn": eps,
        "s_qp": eps,
        "margin": margin,
        "S": eps,
        "delta": margin,
        "DE": 2 * margin,
        "infonce": 2 * eps / temperature,
    }
    out["eci_per_C"] = 2 * margin  # times the query's C
    out["eci"] = capacity_max * 2 * margin
    out["eci_arith"] = capacity_max * (eps + margin) / 2  # C·(S + Δ)/2
    return {k: v + F64_SLACK for k, v in out.items()}
