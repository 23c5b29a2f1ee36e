"""Every option of the metric contract (``shared/spec/ECI.md``) as one frozen dataclass, and the
product's cache folder (:func:`default_cache_dir`: embeddings, saved marks, converted vectors)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

PositiveRule = Literal["min", "max", "mean"]
Aggregate = Literal["query", "set"]


@dataclass(frozen=True)
class ECIConfig:
    """Options of the ECI computation; defaults are the spec's.

    Attributes:
        positive: which labelled positive defines ``s_qp`` when a query has several:
            ``"min"`` (least similar, the spec's default and sentence-transformers' rule),
            ``"max"`` or ``"mean"`` (mean of the positive similarities; ``p*`` for
            ``s_pn``-independent terms is then the least similar positive).
        aggregate: ``"query"`` (ECI = mean of ECI_q, default) or ``"set"`` (C from mean K,
            S and Δ averaged over queries first, then one harmonic mean).
        temperature: τ of the InfoNCE bound I_NCE (default 0.05).
        near_duplicate_threshold: t of the ``near_duplicate`` flag (s_pn ≥ t; default 0.95).
        cross_encoder_margin: m of the ``cross_encoder`` flag (ce_margin ≤ m; default 0).
        percpos: band of the ``percpos`` risk marker (s_qn > percpos · s_qp; default 0.95).
        sem_temperature: τ of ECI_sem's semantic locality π_k (default 0.05).
        sem_consistency_temperature: τ_c of ECI_sem's target consistency c_k (default 0.05).
        sem_lambda: λ of ECI_sem's ln det(I + G/λ) (default 0.1).
        eci_sem_max_k: cap on the K×K matrices of ECI_sem (default 256; None = no cap). A query
            with K > eci_sem_max_k gets ECI_sem on its eci_sem_max_k negatives of largest weight
            w_k (ties: best rank first), weights computed over all K: the log-determinant of that
            principal submatrix of I + G/λ, a lower bound of the full value (equal when the
            dropped negatives have w_k = 0). Time and memory per query are then bounded by the
            cap (a 20,000-negative row no longer builds 20,000² matrices); scoring reports how
            many queries were capped (``ScoreResult.notes``).
        n_bootstrap: B, bootstrap resamples of queries (default 1000).
        confidence: bootstrap interval level (default 0.95).
        seed: seed of the bootstrap (fixed, so numbers are reproducible).
    """

    positive: PositiveRule = "min"
    aggregate: Aggregate = "query"
    temperature: float = 0.05
    near_duplicate_threshold: float = 0.95
    cross_encoder_margin: float = 0.0
    percpos: float = 0.95
    sem_temperature: float = 0.05
    sem_consistency_temperature: float = 0.05
    sem_lambda: float = 0.1
    eci_sem_max_k: int | None = 256
    n_bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.positive not in ("min", "max", "mean"):
            raise ValueError(f"positive={self.positive!r}: use 'min', 'max' or 'mean'")
        if self.aggregate not in ("query", "set"):
            raise ValueError(f"aggregate={self.aggregate!r}: use 'query' or 'set'")
        for name in ("temperature", "sem_temperature", "sem_consistency_temperature", "sem_lambda"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r}: must be > 0 (e.g. 0.05)")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence={self.confidence!r}: must be between 0 and 1 (e.g. 0.95)")
        if self.eci_sem_max_k is not None and (
            isinstance(self.eci_sem_max_k, bool)
            or int(self.eci_sem_max_k) != self.eci_sem_max_k
            or self.eci_sem_max_k < 1
        ):
            raise ValueError(
                f"eci_sem_max_k={self.eci_sem_max_k!r}: must be an integer >= 1 (e.g. 256), or "
                "None for no cap (eci score: 0)"
            )
        if self.n_bootstrap < 1:
            raise ValueError(f"n_bootstrap={self.n_bootstrap!r}: must be >= 1 (e.g. 1000)")

    def as_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes) -> "ECIConfig":
        """A copy with some options changed (validated)."""
        return replace(self, **changes)


def default_cache_dir() -> Path:
    """``$ECI_CACHE_DIR`` if set, else ``~/.cache/eci-explorer``."""
    env = os.environ.get("ECI_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "eci-explorer"
