"""What a miner returns (:class:`MiningResult`: sentence-transformers' report lines and statistics
table, records for a :class:`~eci_core.io.collection.Collection`) and the TREC run writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eci_core.io.collection import Collection
from eci_core.io.records import PassageRef, QueryRecord, SourceReport
from eci_core.mining.params import FILTERS


@dataclass
class MiningResult:
    """What a miner returned.

    ``negatives[qid]`` is the ranked list of ``(passage id, score)`` (best first) for every mined
    query, in ``query_ids`` order (a query may have fewer than ``num_negatives``).
    ``positive_scores[qid]`` is the lowest positive score under the same scorer (NaN for
    ``random``). ``skipped[param]`` is how many candidates each filter removed, out of
    ``n_candidates`` considered (the ``range_max`` window of non-positives, summed over queries).
    """

    method: str
    num_negatives: int
    query_ids: list[str]
    negatives: dict[str, list[tuple[str, float]]]
    positive_scores: dict[str, float]
    skipped: dict[str, int]
    n_candidates: int
    params: dict = field(default_factory=dict)
    n_extra: int = 0

    @property
    def n_negatives(self) -> int:
        return sum(len(v) for v in self.negatives.values())

    @property
    def short_queries(self) -> int:
        """Queries that got fewer than ``num_negatives`` mined negatives."""
        return sum(1 for q in self.query_ids if len(self.negatives[q]) < self.num_negatives)

    def skip_lines(self) -> list[str]:
        """sentence-transformers' report lines: "Skipped N potential negatives (x %) due to the
        <param> of <value>." (ratio over the candidates still in play when the filter ran) and
        "Could not find enough negatives for …"."""
        lines = []
        remaining = self.n_candidates
        for name in FILTERS:
            n = self.skipped.get(name, 0)
            if n:
                ratio = n / remaining if remaining else 0.0
                lines.append(
                    f"Skipped {n:,} potential negatives ({ratio:.2%}) due to the {name} of "
                    f"{self.params.get(name)}."
                )
                remaining -= n
        short = self.short_queries
        if short:
            first = "pool_size" if self.params.get("pool_size") else "range_max"
            fixes = [first] + [p for p in ("range_min", *FILTERS[:3]) if self.params.get(p) not in (None, 0)]
            what = fixes[0] if len(fixes) == 1 else ", ".join(fixes[:-1]) + " and " + fixes[-1]
            share = short / max(len(self.query_ids), 1)
            plural = "s" if len(fixes) > 1 else ""
            lines.append(
                f"Could not find enough negatives for {short} queries ({share:.2%}). Consider adjusting "
                f"the {what} parameter{plural} if you'd like to find more valid negatives."
            )
        return lines

    def stats_table(self) -> str:
        """The Positive / Negative / Difference table sentence-transformers prints (difference =
        positive − negative score per mined pair)."""
        pos = np.array([self.positive_scores[q] for q in self.query_ids], dtype=np.float64)
        neg, diff = [], []
        for q in self.query_ids:
            for _, s in self.negatives[q]:
                neg.append(s)
                diff.append(self.positive_scores[q] - s)
        cols = [pos, np.asarray(neg, dtype=np.float64), np.asarray(diff, dtype=np.float64)]
        row = "{:<6} {:>14} {:>14} {:>14}"
        lines = [
            row.format("Metric", "Positive", "Negative", "Difference"),
            row.format("Count", f"{len(pos):,}", f"{len(neg):,}", ""),
        ]
        stats = [
            ("Mean", np.mean),
            ("Median", np.median),
            ("Std", lambda a: np.std(a, ddof=1) if a.size > 1 else float("nan")),
            ("Min", np.min),
            ("25%", lambda a: np.quantile(a, 0.25)),
            ("50%", lambda a: np.quantile(a, 0.5)),
            ("75%", lambda a: np.quantile(a, 0.75)),
            ("Max", np.max),
        ]
        for name, fn in stats:
            vals = [f"{fn(c):.4f}" if c.size and np.isfinite(c).all() else "nan" for c in cols]
            lines.append(row.format(name, *vals))
        return "\n".join(lines)

    def summary(self, path: str | Path | None = None, written: int | None = None) -> str:
        """One line: negatives, queries, method, queries short of ``num_negatives``, output."""
        n = self.n_negatives if written is None else written
        extra = f", {self.n_extra:,} added from --add-negatives" if self.n_extra else ""
        out = f" -> {path}" if path is not None else ""
        return (
            f"Mined {n:,} negatives for {len(self.query_ids):,} queries with {self.method}{extra} "
            f"(mean {n / max(len(self.query_ids), 1):.2f} per query; {self.short_queries} queries with "
            f"fewer than {self.num_negatives}){out}"
        )

    def to_records(self, collection: Collection) -> list[QueryRecord]:
        """The result as loader records (ids resolved to texts in ``collection``), e.g. for
        ``collection.add_source(name, result.to_records(collection))``."""
        recs = []
        for qid in self.query_ids:
            qi = collection.query_index(qid)
            pos = [
                PassageRef(collection.passage_ids[p], collection.passage_texts[p])
                for p in collection.positives.get(qi, [])
            ]
            negs = [
                PassageRef(pid, collection.passage_texts[collection.passage_index(pid)], float(s))
                for pid, s in self.negatives[qid]
            ]
            recs.append(QueryRecord(qid, collection.query_texts[qi], pos, negs))
        return recs

    def add_to(self, collection: Collection, name: str | None = None) -> SourceReport:
        """Add the mined negatives to ``collection`` as a source (named after the method)."""
        return collection.add_source(name or self.method, self.to_records(collection), format="mined")


def write_trec_run(result: MiningResult, path: str | Path, tag: str | None = None) -> int:
    """Write ``qid Q0 docid rank score tag`` lines (queries in mining order, rank 1 = best) and
    return the number of lines. Ids containing whitespace cannot be written as TREC."""
    tag = tag or result.method
    if any(c.isspace() for c in tag) or not tag:
        raise ValueError(
            f"tag={tag!r}: a TREC tag must be one non-empty word without spaces (e.g. {result.method!r})"
        )
    lines = []
    for qid in result.query_ids:
        if any(c.isspace() for c in qid):
            raise ValueError(
                f"query id {qid!r} contains whitespace and cannot be written to a TREC run; rename it"
            )
        for rank, (pid, score) in enumerate(result.negatives[qid], start=1):
            if any(c.isspace() for c in pid):
                raise ValueError(
                    f"passage id {pid!r} contains whitespace and cannot be written to a TREC run; rename it"
                )
            lines.append(f"{qid} Q0 {pid} {rank} {score:.6f} {tag}\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(lines)
    return len(lines)
