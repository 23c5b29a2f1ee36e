"""A fused gather-and-dot kernel (numba) for the pair pass of :func:`eci_core.scoring.arrays.score_arrays`.

For every (query, negative) pair it reads the negative's row once and computes, in one compiled
loop over the dimensions, ``s_qn = f(q)·f(n)`` and ``s(p, n)`` for each labelled positive p of the
query (``s_pn`` = their max), plus the exact-duplicate test (the negative is a positive's own row,
or has its text key). This removes the intermediate ``(n, K, d)`` gather buffer that the numpy path
writes and reads back; measured in BENCHMARKS.md.

Used only when it can give the numpy path's numbers up to float32 summation order (``fastmath``
lets the loop use SIMD reductions whose width depends on the CPU, so a similarity may differ from
the numpy path by up to ``2·γ_d·|q|·|n|``, γ_d = d·u/(1 − d·u), u = 2⁻²⁴: 5.7e-6 for d = 48;
the InfoNCE bound amplifies that by 2/τ; tests/test_scoring.py derives every metric's
tolerance): float32 C-contiguous matrices, ECI_sem off, and
at least :data:`MIN_PAIRS` pairs (below that numba's one-off compile, cached on disk afterwards,
costs more than it saves). ``ECI_NO_NUMBA=1`` turns it off.
"""

from __future__ import annotations

import os

import numpy as np

#: Smallest number of pairs for which the fused kernel is used.
MIN_PAIRS = 200_000

_KERNEL = None


def available() -> bool:
    if os.environ.get("ECI_NO_NUMBA", "").strip() not in ("", "0"):
        return False
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _kernel():
    global _KERNEL
    if _KERNEL is None:
        from numba import njit, prange

        @njit(parallel=True, fastmath=True, cache=True, nogil=True)
        def pair_pass(
            qe,
            pe,
            qrow_of_pair,
            n_idx,
            q_local_of_pair,
            pos_starts,
            pos_counts,
            pp,
            s_qpos,
            tk,
            s_qn,
            s_pn,
            exact_dup,
        ):
            n = n_idx.shape[0]
            dim = qe.shape[1]
            use_tk = tk.shape[0] > 0
            for i in prange(n):
                r = n_idx[i]
                qr = qrow_of_pair[i]
                ql = q_local_of_pair[i]
                a = np.float32(0.0)
                for d in range(dim):
                    a += qe[qr, d] * pe[r, d]
                best = -np.inf
                hit = -1
                dup = False
                for j in range(pos_starts[ql], pos_starts[ql] + pos_counts[ql]):
                    p = pp[j]
                    b = np.float32(0.0)
                    for d in range(dim):
                        b += pe[p, d] * pe[r, d]
                    if b > best:
                        best = b
                    if p == r and hit < 0:
                        hit = j
                    if use_tk and tk[p] == tk[r]:
                        dup = True
                s_qn[i] = s_qpos[hit] if hit >= 0 else a
                s_pn[i] = best
                exact_dup[i] = dup if use_tk else hit >= 0

        _KERNEL = pair_pass
    return _KERNEL


def usable(query_emb, passage_emb, n_pairs: int, with_sem: bool) -> bool:
    """Whether :func:`pair_pass` applies (see the module docstring)."""
    return (
        not with_sem
        and n_pairs >= MIN_PAIRS
        and type(query_emb) is np.ndarray
        and type(passage_emb) is np.ndarray  # not memory maps
        and query_emb.dtype == np.float32
        and passage_emb.dtype == np.float32
        and query_emb.flags.c_contiguous
        and passage_emb.flags.c_contiguous
        and available()
    )


def pair_pass(
    query_emb,
    passage_emb,
    qrow_of_pair,
    n_idx,
    q_local_of_pair,
    pos_starts,
    pos_counts,
    pp,
    s_qpos,
    text_key,
    s_qn,
    s_pn,
    exact_dup,
    n_threads: int = 2,
) -> None:
    """Fills ``s_qn``, ``s_pn`` and ``exact_dup`` (see the module docstring)."""
    import numba

    tk = np.zeros(0, np.int64) if text_key is None else np.ascontiguousarray(text_key, dtype=np.int64)
    prev = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        _kernel()(
            query_emb,
            passage_emb,
            qrow_of_pair,
            n_idx,
            q_local_of_pair,
            pos_starts,
            pos_counts,
            pp,
            s_qpos,
            tk,
            s_qn,
            s_pn,
            exact_dup,
        )
    finally:
        numba.set_num_threads(prev)
