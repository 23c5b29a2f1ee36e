"""``eci mine --sweep``: the sources of :data:`SWEEP` mined from one corpus, each written as a
TREC run."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from eci_core.io.collection import Collection
from eci_core.mining.api import mine
from eci_core.mining.beir import read_beir
from eci_core.mining.cross_encoder import resolve_cross_encoder
from eci_core.mining.dense import resolve_encoder
from eci_core.mining.params import DEFAULT_POOL_SIZE, Progress
from eci_core.mining.result import MiningResult, write_trec_run


#: The sources ``eci mine --sweep`` writes: (name, method, parameters); ``"+llm"`` names add the
#: ``--add-negatives`` file (e.g. the LLM-written negatives) to the mined ones. Windows sample
#: 10 negatives uniformly (seeded) from the given rank window, so K stays 10.
SWEEP: tuple[tuple[str, str, dict], ...] = (
    ("dense-1-5", "dense", {"num_negatives": 5}),
    ("dense-11-30", "dense", {"range_min": 10, "range_max": 30, "sampling_strategy": "random"}),
    ("dense-31-100", "dense", {"range_min": 30, "range_max": 100, "sampling_strategy": "random"}),
    ("dense-percpos-0", "dense", {"relative_margin": 0.0}),
    ("dense-percpos-0.1", "dense", {"relative_margin": 0.1}),
    ("dense-percpos-0.2", "dense", {"relative_margin": 0.2}),
    ("bm25-11-30", "bm25", {"range_min": 10, "range_max": 30, "sampling_strategy": "random"}),
    ("bm25-31-100", "bm25", {"range_min": 30, "range_max": 100, "sampling_strategy": "random"}),
    ("bm25-percpos-0.05", "bm25", {"relative_margin": 0.05}),
    ("ce-denoised", "cross-encoder", {"absolute_margin": 1.0}),
    ("ce-11-30", "cross-encoder", {"range_min": 10, "range_max": 30, "sampling_strategy": "random"}),
    ("bm25ce-m0", "bm25+ce", {"absolute_margin": 0.0}),
    ("bm25ce-m3", "bm25+ce", {"absolute_margin": 3.0}),
    ("dense+llm", "dense", {"extra": True}),
    ("dense-percpos+llm", "dense", {"relative_margin": 0.05, "extra": True}),
    ("bm25+llm", "bm25", {"extra": True}),
    ("random+llm", "random", {"extra": True}),
)


def mine_sweep(
    data: Collection | str | Path,
    out_dir: str | Path,
    *,
    extra_negatives: Mapping[str, Sequence[str]] | None = None,
    exclude_prefixes: Sequence[str] = (),
    seed: int = 0,
    encoder=None,
    cross_encoder=None,
    cache=None,
    split: str = "test",
    only: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> list[tuple[str, MiningResult, Path, int]]:
    """Mine every source of :data:`SWEEP` (or the names in ``only``) from one corpus and write
    each as ``out_dir/<name>.trec`` (tag = name). The ``+llm`` sources need ``extra_negatives``
    and are skipped without it. Returns ``(name, result, path, lines written)`` per source."""
    coll = data if isinstance(data, Collection) else read_beir(data, split=split)
    names = [s[0] for s in SWEEP]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ValueError(f"sweep source {unknown[0]!r} is unknown; choose from {', '.join(names)}")
    enc = resolve_encoder(encoder)
    chosen = [s for s in SWEEP if not only or s[0] in only]
    ce = resolve_cross_encoder(cross_encoder) if any(m in DEFAULT_POOL_SIZE for _, m, _ in chosen) else None
    out = []
    for name, method, params in SWEEP:
        if only and name not in only:
            continue
        kw = dict(params)
        wants_extra = kw.pop("extra", False)
        if wants_extra and not extra_negatives:
            continue
        res = mine(
            coll,
            method,
            exclude_prefixes=exclude_prefixes,
            seed=seed,
            encoder=enc,
            cross_encoder=ce,
            cache=cache,
            extra_negatives=extra_negatives if wants_extra else None,
            progress=progress,
            **kw,
        )
        path = Path(out_dir) / f"{name}.trec"
        out.append((name, res, path, write_trec_run(res, path, tag=name)))
    return out
