"""The local engine: everything in this process (numpy, 2 threads for the pair kernel)."""

from __future__ import annotations


def score_local(collection, encoder, config, **kwargs):
    """:func:`eci_core.scoring.score_collection` with ``encoder`` loaded by name if it is one."""
    from eci_core.models.registry import load_encoder
    from eci_core.scoring import score_collection

    if kwargs.get("embeddings") is None and (encoder is None or isinstance(encoder, str)):
        encoder = load_encoder(encoder)
    return score_collection(collection, encoder, config, **kwargs)
