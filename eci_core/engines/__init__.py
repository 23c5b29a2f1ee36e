"""Where scoring runs: ``"local"`` (this process, :func:`eci_core.scoring.score_collection`) or
``"ray"`` (a Ray cluster, :mod:`eci_core.engines.ray_engine`; optional extra
``pip install eci-explorer[ray]``).

Both give the same :class:`eci_core.scoring.ScoreResult` (same tables, same per-source summary
and bootstrap) for the same data, encoder and options.
"""

from __future__ import annotations

ENGINES = ("local", "ray")


def score(
    collection, encoder, config=None, *, engine: str = "local", ray_address: str | None = None, **kwargs
):
    """Scores ``collection`` on ``engine`` ("local" or "ray"); ``kwargs`` are
    :func:`eci_core.scoring.score_collection`'s (``cross_encoder``, ``cache``, ``sources``,
    ``progress``, ``embeddings``, ...). For ``"ray"``, ``encoder`` may be a name or folder (loaded
    once per Ray worker) and ``ray_address`` the cluster to join (None: start or reuse a local
    Ray)."""
    from eci_core.config import ECIConfig

    config = config or ECIConfig()
    if engine == "local":
        from eci_core.engines.local import score_local

        return score_local(collection, encoder, config, **kwargs)
    if engine == "ray":
        from eci_core.engines.ray_engine import score_ray

        return score_ray(collection, encoder, config, ray_address=ray_address, **kwargs)
    raise ValueError(f"engine={engine!r}: use 'local' or 'ray'")


__all__ = ["ENGINES", "score"]
