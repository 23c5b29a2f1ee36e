"""``validate()``: run the protocol, compute the tables, and save / reopen them (JSON + CSV)."""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from eci_core.validation.analysis import (
    EffectSize,
    agreement_table,
    downstream_table,
    effect_size,
    encoder_agreement,
    has_joint_intervals,
    pretraining_table,
    trainer_agreement,
)
from eci_core.validation.protocol import BASELINES, IN_BATCH, UNTRAINED, ValidationConfig, run_protocol

RESULTS_JSON = "results.json"
_TEXT_COLUMNS = {"variant", "kind", "number", "pick", "name"}
FORMAT_VERSION = 1
Progress = Callable[[str, int, int], None]


#: The ``ECIConfig`` options that change the pre-training numbers a validation correlates with
#: training (ECI, its components, I_NCE, ECI_sem, the unsafe rates). The bootstrap options and
#: the flag thresholds (near-duplicate, cross-encoder margin, percpos) change none of them.
PRETRAINING_SETTINGS = (
    "positive",
    "aggregate",
    "temperature",
    "sem_temperature",
    "sem_consistency_temperature",
    "sem_lambda",
    "eci_sem_max_k",
)


def pretraining_settings(config=None) -> dict:
    """The :data:`PRETRAINING_SETTINGS` of ``config`` (an ``ECIConfig`` or a dict of its options;
    None = the defaults), as saved in a validation's ``meta["pretraining_settings"]``."""
    from eci_core.config import ECIConfig

    if config is None:
        config = ECIConfig()
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    return {k: get(k) for k in PRETRAINING_SETTINGS}


def source_signatures(collection, sources: Sequence[str] | None = None) -> dict[str, str]:
    """sha1[:16] per source of its sorted ``query_id<TAB>passage_id`` lines: saved results are
    shown for loaded data only when the loaded sources have the same negatives."""
    out = {}
    for name in sources or list(collection.sources):
        s = collection.sources[name]
        lines = sorted(
            f"{collection.query_ids[int(q)]}\t{collection.passage_ids[int(p)]}"
            for q, p in zip(s.q_idx, s.p_idx)
        )
        out[name] = hashlib.sha1("\n".join(lines).encode("utf-8")).hexdigest()[:16]
    return out


@dataclass
class ValidationResult:
    """Everything a validation produced (all tables are plain DataFrames).

    ``downstream``: one row per variant (sources and the baselines ``untrained`` / ``in-batch
    only``): ``variant, kind, ndcg@10, ndcg@10_low, ndcg@10_high, recall@10, mrr@10, seed_sd,
    gain, gain_low, gain_high, n_test_queries, n_seeds, own_positive`` (training negatives that
    were their own query's positive, kept; summed over splits). ``beats``: P(row trains better than
    column). ``pretraining``: the numbers known before training, per source. ``agreement``: one
    row per pre-training number (``number, n, spearman(_low/_high), kendall(_low/_high),
    pairwise_accuracy(_low/_high), top1_regret(_low/_high), resolved_accuracy, n_resolved,
    spearman_src_low/_high, kendall_src_low/_high, pick``: intervals from the joint bootstrap
    over test queries and seeds, the ``_src_`` ones from resampling sources;
    ``analysis.agreement_table``). ``per_query``: variant, split, seed, query_id and the three
    measures. ``effect`` (computed from ``per_query``): how far apart the sources train, the
    resolved pairs, rank ranges and the power line (``analysis.effect_size``). ``meta``: trainer,
    encoder, configuration, the split policy used (``split_policy``: official or kfold), splits
    (training queries used, leaked negatives, own-positive negatives kept, uncovered queries per
    source), timing, source signatures, resolution, and
    what the pre-training numbers were computed under: ``pretraining_encoder`` (its name),
    ``encoder_identity`` (:func:`~eci_core.models.registry.encoder_identity`, portable) and
    ``pretraining_settings`` (:func:`pretraining_settings`); :meth:`matches` compares them with
    the current view.
    ``encoder_eci``: ECI per source under each extra encoder (may be empty)."""

    downstream: pd.DataFrame
    beats: pd.DataFrame
    pretraining: pd.DataFrame
    agreement: pd.DataFrame
    per_query: pd.DataFrame
    meta: dict
    encoder_eci: pd.DataFrame = field(default_factory=pd.DataFrame)
    path: str | None = None

    # ------------------------------------------------------------------ reading
    @property
    def trainer(self) -> str:
        return str(self.meta.get("trainer"))

    @property
    def sources(self) -> list[str]:
        return [str(v) for v in self.downstream.loc[self.downstream["kind"] == "source", "variant"]]

    @property
    def resolution(self) -> float:
        return float(self.meta.get("resolution", float("nan")))

    @functools.cached_property
    def effect(self) -> EffectSize | None:
        """Effect sizes, resolved pairs, rank ranges and the power line from the per-query table
        (``analysis.effect_size``, the validation's bootstrap size and seed); None when the
        per-query table is not stored or unusable (results saved without ``per_query.csv``)."""
        if self.per_query is None or self.per_query.empty or not self.sources:
            return None
        cfg = self.meta.get("config") or {}
        try:
            return effect_size(
                self.per_query,
                self.sources,
                n_bootstrap=int(cfg.get("n_bootstrap") or 1000),
                seed=int(cfg.get("split_seed") or 0),
            )
        except (ValueError, KeyError):
            return None

    def best_source(self) -> str:
        d = self.downstream[self.downstream["kind"] == "source"]
        return str(d.sort_values("ndcg@10", ascending=False, kind="stable").iloc[0]["variant"])

    def encoder_agreement(self) -> pd.DataFrame:
        """Kendall τ between the ECI rankings of the encoders in ``encoder_eci``."""
        if self.encoder_eci is None or self.encoder_eci.empty:
            return pd.DataFrame()
        return encoder_agreement({c: self.encoder_eci[c].dropna() for c in self.encoder_eci.columns})

    def validated_names(self, names) -> bool:
        """True when every source name in ``names`` (at least one) was validated here (a cheap
        first check of :meth:`matches`)."""
        sig = self.meta.get("source_signatures") or {}
        names = list(names)
        return bool(names) and all(name in sig for name in names)

    @property
    def encoder_identity(self) -> str | None:
        """The :func:`~eci_core.models.registry.encoder_identity` of the encoder this validation
        trained and computed its pre-training numbers under: ``meta["encoder_identity"]``, else
        (results saved before it was recorded) the normalised ``pretraining_encoder`` name. None
        when neither is recorded."""
        from eci_core.models.registry import encoder_identity

        for key in ("encoder_identity", "pretraining_encoder"):
            v = self.meta.get(key)
            if isinstance(v, str) and v.strip():
                return encoder_identity(v)
        return None

    @property
    def encoder_label(self) -> str:
        """The encoder's name for people (``pretraining_encoder``, else the identity)."""
        v = self.meta.get("pretraining_encoder")
        return (
            str(v)
            if isinstance(v, str) and v.strip()
            else str(self.encoder_identity or "an unrecorded encoder")
        )

    def view_problem(self, encoder, config) -> str | None:
        """Why this validation must not be quoted next to pre-training numbers computed under
        ``encoder`` (an encoder object, name or path: see
        :func:`~eci_core.models.registry.encoder_identity`) with ``config`` (an ``ECIConfig``);
        None when it may be. A validation records its encoder and :func:`pretraining_settings`;
        one that does not (saved before they were recorded) never matches."""
        from eci_core.models.registry import encoder_identity

        mine = self.encoder_identity
        if mine is None:
            return "it does not record which encoder it was made under (saved by an older version: re-run it)"
        theirs = encoder_identity(encoder)
        if mine != theirs:
            return f"it was made under encoder {self.encoder_label}; these scores use {theirs}"
        saved = self.meta.get("pretraining_settings")
        if not isinstance(saved, dict):
            return (
                "it does not record the metric settings of its pre-training numbers (saved by an older "
                "version: re-run it)"
            )
        now = pretraining_settings(config)
        diff = [k for k in PRETRAINING_SETTINGS if k not in saved or saved[k] != now[k]]
        if diff:
            said = ", ".join(f"{k}={saved[k]!r}" if k in saved else f"{k} unrecorded" for k in diff)
            want = ", ".join(f"{k}={now[k]!r}" for k in diff)
            return f"it was made with other metric settings ({said}; these scores use {want})"
        return None

    def matches(self, collection, encoder, config, signatures: dict[str, str] | None = None) -> bool:
        """True when this validation may be quoted for ``collection`` scored under ``encoder`` with
        ``config``: every loaded source was validated here with the same negatives
        (:meth:`matches_data`), under the same encoder and pre-training settings
        (:meth:`view_problem` is None)."""
        return self.view_problem(encoder, config) is None and self.matches_data(collection, signatures)

    def matches_data(self, collection, signatures: dict[str, str] | None = None) -> bool:
        """True when every source loaded in ``collection`` was validated here with the same negatives
        (whatever the encoder: :meth:`matches` checks both).
        ``signatures``: ``source_signatures(collection)`` when the caller has them already (they
        take seconds at millions of pairs)."""
        sig = self.meta.get("source_signatures") or {}
        if not self.validated_names(collection.sources):
            return False  # a loaded source this validation never saw (no need to hash the others)
        if signatures is None:
            try:
                signatures = source_signatures(collection)
            except (KeyError, IndexError):
                return False
        return all(sig.get(k) == v for k, v in signatures.items())

    def notes(self) -> list[str]:
        """Plain statements of what the validation can and cannot resolve: how far apart the
        sources train (effect size), how many source pairs are resolved and which sources are
        tied, the power line, then the training-at-all baseline and the resolution."""
        d = self.downstream.set_index("variant")
        out = []
        e = self.effect
        src = self.sources
        if e is not None and len(src) > 1:
            s, t = e.summary, e.table.set_index("variant")
            best = s["best"]
            line = (
                f"How far apart the sources train: the {len(src)} sources span {100 * s['spread']:.1f} "
                f"nDCG@10 points ({s['worst_ndcg@10']:.3f} {s['worst']} to {s['best_ndcg@10']:.3f} {best}; "
                f"95 % CI of the spread {100 * s['spread_low']:.1f}–{100 * s['spread_high']:.1f}, biased "
                "upward: tied sources still show a spread)."
            )
            if np.isfinite(t.loc[best, "vs_in_batch"]):
                line += (
                    f" {best} vs in-batch only {100 * t.loc[best, 'vs_in_batch']:+.1f} points "
                    f"[{100 * t.loc[best, 'vs_in_batch_low']:+.1f}, "
                    f"{100 * t.loc[best, 'vs_in_batch_high']:+.1f}]"
                )
                if np.isfinite(t.loc[best, "vs_untrained"]):
                    line += (
                        f", vs untrained {100 * t.loc[best, 'vs_untrained']:+.1f} "
                        f"[{100 * t.loc[best, 'vs_untrained_low']:+.1f}, "
                        f"{100 * t.loc[best, 'vs_untrained_high']:+.1f}]"
                    )
                line += "."
            out.append(line)
            seeds = (
                f"{s['n_seeds']} seeds per split"
                if s["seeds_resampled"]
                else "one seed per split: training noise is not in this count, which is therefore optimistic"
            )
            out.append(
                f"Resolved: {s['n_resolved']} of {s['n_pairs']} source pairs (paired bootstrap over "
                f"{s['n_queries']} test queries and {seeds}; P(trains better) ≥ {s['level']:.2f} either "
                f"way). Unresolved sources are tied, not ranked: {_names(s['tied_first'])} "
                f"{'may be' if len(s['tied_first']) > 1 else 'is'} best."
            )
            pw = power_note(e.power)
            if pw:
                out.append(pw)
        if UNTRAINED in d.index and IN_BATCH in d.index:
            ib, un = d.loc[IN_BATCH], d.loc[UNTRAINED]
            out.append(
                f"Training at all: in-batch only {ib['ndcg@10']:.3f} vs untrained {un['ndcg@10']:.3f} "
                f"nDCG@10 (in-batch minus untrained {-un.get('gain', float('nan')):+.3f}, 95 % CI "
                f"{-un.get('gain_high', float('nan')):+.3f}…{-un.get('gain_low', float('nan')):+.3f})."
            )
        if len(src) > 1:
            b = self.beats.loc[src, src].to_numpy()
            iu = np.triu_indices(len(src), 1)
            p = b[iu]
            resolved = int(np.sum((p >= 0.95) | (p <= 0.05)))
            sd = d.loc[src, "seed_sd"]
            seeds = (
                f" Seed spread (sd over seeds of a source's mean): {np.nanmin(sd):.4f}–{np.nanmax(sd):.4f}."
                if np.isfinite(sd.to_numpy(dtype=float)).any()
                else " One seed: the seed spread is not measured."
            )
            count = (
                ""
                if e is not None
                else (
                    f"; {resolved} of {p.size} source pairs are resolved over test queries "
                    "(P ≥ 0.95 either way; seeds averaged)"
                )
            )
            out.append(
                f"Resolution: paired differences smaller than about {self.resolution:.3f} nDCG@10 are within "
                "noise (median half-width of the 95 % interval of a paired difference "
                f"over test queries){count}.{seeds}"
            )
            spread = float(d.loc[src, "ndcg@10"].max() - d.loc[src, "ndcg@10"].min())
            if spread < self.resolution:
                out.append(
                    f"All sources lie within {spread:.3f} nDCG@10 of each other, below the resolution: this "
                    "validation cannot tell them apart."
                )
        own = self.own_positive()
        if any(own.values()):
            out.append(
                "Trained as given: negatives that are their own query's labelled positive (kept, summed over "
                "splits): " + ", ".join(f"{k} {v}" for k, v in own.items() if v) + "."
            )
        return out

    def own_positive(self) -> dict[str, int]:
        """Per source, training negatives that were their own query's labelled positive (kept in
        training), summed over splits; empty for results saved before this was counted."""
        out: dict[str, int] = {}
        for s in self.meta.get("splits", []):
            for k, v in (s.get("own_positive") or {}).items():
                out[k] = out.get(k, 0) + int(v)
        return out

    def summary(self) -> str:
        """One sentence, effect size first: how far apart the sources train and how many pairs are
        resolved, which source(s) trained best (tied sources named as tied), then whether ECI
        agreed (ρ with its interval: joint over test queries and seeds when the per-query table
        is available)."""
        best = self.best_source()
        d = self.downstream.set_index("variant")
        row = d.loc[best]
        e = self.effect
        policy = self.meta.get("split_policy")
        splits = (
            "the official split"
            if policy == "official"
            else f"{self.meta.get('n_splits', '?')} {'k-fold ' if policy == 'kfold' else ''}split(s)"
        )
        text = (
            f"Validation ({self.trainer} trainer, {splits} × {int(row['n_seeds'])} seed(s)"
            + (f", {e.summary['n_queries']} test queries" if e is not None else "")
            + "): "
        )
        tied = e.summary["tied_first"] if e is not None and len(self.sources) > 1 else [best]
        if e is not None and len(self.sources) > 1:
            text += (
                f"the sources span {100 * e.summary['spread']:.1f} nDCG@10 points and "
                f"{e.summary['n_resolved']} of {e.summary['n_pairs']} source pairs are resolved; "
            )
        if len(tied) > 1:
            text += f"{len(tied)} sources are tied for best ({_names(tied)}); {best} is highest"
        else:
            text += f"{best} trained best"
        text += f" (nDCG@10 {row['ndcg@10']:.3f}, 95 % CI {row['ndcg@10_low']:.3f}–{row['ndcg@10_high']:.3f}"
        if IN_BATCH in d.index and not math.isnan(row.get("gain", float("nan"))):
            text += f"; {row['gain']:+.3f} over in-batch only"
        text += ")."
        eci = self.agreement[self.agreement["number"] == "ECI"]
        if len(eci):
            r = eci.iloc[0]
            agree = (
                "agreed with"
                if r["spearman_low"] > 0
                else "ranked against"
                if r["spearman_high"] < 0
                else "did not reliably agree with"
            )
            joint = has_joint_intervals(self.agreement)
            how = (
                "sources resampled"
                if not joint
                else "test queries and seeds resampled"
                if e is None or e.summary["seeds_resampled"]
                else "test queries resampled, one seed"
            )
            if math.isnan(r["spearman"]):
                agree = "has no measurable agreement with"
                rho = "Spearman ρ undefined (the sources' nDCG@10 or their ECI are all equal)"
            else:
                rho = (
                    f"Spearman ρ = {r['spearman']:.2f} (95 % CI "
                    f"{r['spearman_low']:.2f}…{r['spearman_high']:.2f}, {how})"
                )
            text += f" ECI {agree} training: {rho} over {int(r['n'])} sources; ECI's pick {r['pick']} "
            ranks = e.table.set_index("variant")["rank"] if e is not None else None
            if r["pick"] == best:
                text += "is the best-training source."
            elif r["pick"] in tied:
                text += f"is tied for best (regret {r['top1_regret']:.3f} nDCG@10, within noise)."
            elif ranks is not None and r["pick"] in ranks.index:
                text += (
                    f"ranks {ranks[r['pick']]} of {len(self.sources)} "
                    f"(regret {r['top1_regret']:.3f} nDCG@10)."
                )
            else:
                text += f"is not the best-training source (regret {r['top1_regret']:.3f} nDCG@10)."
        return text

    # ------------------------------------------------------------------ saving
    def save(self, directory: str | Path, escape_formulas: bool = True) -> Path:
        """Write ``results.json`` (everything) and CSV copies of the tables to ``directory``.

        In the CSV files a text cell (a source name, a query id, a header) that a spreadsheet
        would run as a formula gets a leading ``'`` (:func:`eci_core.io.tables.escape_formula_cells`;
        :func:`load_results` reverses it for ``per_query.csv``); ``escape_formulas=False`` writes
        them as they are."""
        from eci_core.io.tables import escape_formula_cells

        esc = escape_formula_cells if escape_formulas else (lambda df: df)
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        doc = {
            "format_version": FORMAT_VERSION,
            "meta": _jsonable(self.meta),
            "downstream": _records(self.downstream),
            "beats": {
                "index": list(map(str, self.beats.index)),
                "values": _jsonable(self.beats.to_numpy().tolist()),
            },
            "pretraining": _records(self.pretraining),
            "agreement": _records(self.agreement),
            "encoder_eci": {
                "index": list(map(str, self.encoder_eci.index)),
                "columns": list(map(str, self.encoder_eci.columns)),
                "values": _jsonable(self.encoder_eci.to_numpy().tolist()),
            }
            if not self.encoder_eci.empty
            else None,
            "effect": self.effect.to_json() if self.effect is not None else None,
            "notes": self.notes(),
            "summary": self.summary(),
        }
        (out / RESULTS_JSON).write_text(
            json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        esc(self.downstream).to_csv(out / "downstream.csv", index=False)
        esc(self.agreement).to_csv(out / "agreement.csv", index=False)
        esc(self.pretraining).to_csv(out / "pretraining.csv", index=False)
        esc(self.beats).to_csv(out / "beats.csv")
        esc(self.per_query).to_csv(out / "per_query.csv", index=False)
        if not self.encoder_eci.empty:
            esc(self.encoder_eci).to_csv(out / "encoder_eci.csv")
        if self.effect is not None:
            esc(self.effect.table).to_csv(out / "effect.csv", index=False)
        return out


def _names(names, limit: int = 5) -> str:
    names = list(names)
    return (
        ", ".join(names)
        if len(names) <= limit
        else ", ".join(names[:limit]) + f" and {len(names) - limit} more"
    )


def _count(n: float) -> str:
    return "∞" if math.isinf(n) else f"{math.ceil(n):,}"


def power_note(power: dict) -> str:
    """The power line in words (``analysis.power_line``): test queries (and seeds) needed to
    resolve its ``delta`` between two typical sources."""
    needed = power.get("queries_needed") if power else None
    if needed is None or math.isnan(needed):
        return ""
    seed_var = power["sigma2_seed"]
    measured = seed_var is not None and math.isfinite(seed_var)
    if power["sigma2_query"] == 0 and power["sigma2_residual"] == 0 and (not measured or seed_var == 0):
        return (
            "Power: not estimated: the paired differences between sources do not vary over test queries or "
            "seeds here (every source scores the same on each query), so there is no noise to size against."
        )
    design = f"{power['n_splits']} split(s) × {power['n_seeds']} seed(s)"
    others = (
        ", ".join(
            f"{_count(n)} with {k} seed{'s' if int(k) > 1 else ''}"
            for k, n in power["queries_needed_by_seeds"].items()
            if int(k) != power["n_seeds"]
        )
        if measured
        else ""
    )
    text = (
        f"Power: resolving a true difference of {power['delta']:.2f} nDCG@10 between two typical sources "
        f"(two-sided {100 * power['alpha']:.0f} %, power {100 * power['power']:.0f} %) needs about "
        f"{_count(power['queries_needed'])} test queries at {design} (this "
        f"validation has {power['n_queries']})" + (f"; {others}" if others else "") + ". "
    )
    if measured and power.get("seeds_needed", 1) > 1:
        text += (
            f"Below {power['seeds_needed']} seeds per split no number of test queries is enough "
            "(seed noise). "
        )
    text += (
        "From the median over source pairs of the per-query variance of paired "
        f"differences ({power['sigma2_query']:.2g})"
        + (
            f", the seed variance ({seed_var:.2g}) and their interaction ({power['sigma2_residual']:.2g})."
            if measured
            else "; one seed, so the seed variance is not measured and this is a lower bound."
        )
    )
    return text


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _records(df: pd.DataFrame) -> list[dict]:
    return _jsonable(df.to_dict("records"))


def load_results(directory: str | Path, roots=None) -> ValidationResult:
    """Reopen a saved validation (``results.json`` in ``directory``, or the file itself) without
    recomputing. Raises ``ValueError`` naming the file when it is not a validation result.
    ``roots`` (the dashboard's data roots): each file is read only when it resolves inside one
    (:func:`eci_core.io.trust.open_within`)."""
    from eci_core.io.trust import open_within

    p = Path(directory)
    f = p / RESULTS_JSON if p.is_dir() else p
    if not f.is_file():
        raise FileNotFoundError(f"{f}: no saved validation here (run `eci validate DIR --out {p}` first)")
    try:
        with open_within(f, roots) as fh:
            doc = json.loads(fh.read().decode("utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{f}:{err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(doc, dict) or "downstream" not in doc or "meta" not in doc:
        raise ValueError(f"{f}: not a validation result (no 'downstream' / 'meta' field)")

    def frame(recs):
        df = pd.DataFrame(recs)
        for c in df.columns:  # JSON null -> NaN in numeric columns
            if c in _TEXT_COLUMNS:
                continue
            vals = [v for v in df[c] if v is not None]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                df[c] = df[c].astype(float)
        return df

    def nan(v):
        return np.nan if v is None else v

    b = doc["beats"]
    beats = pd.DataFrame(
        [[nan(v) for v in row] for row in b["values"]],
        index=pd.Index(b["index"], name="a"),
        columns=pd.Index(b["index"], name="b"),
        dtype=float,
    )
    enc = doc.get("encoder_eci")
    encoder_eci = (
        pd.DataFrame(
            [[nan(v) for v in row] for row in enc["values"]],
            index=enc["index"],
            columns=enc["columns"],
            dtype=float,
        )
        if enc
        else pd.DataFrame()
    )
    per_query_path = f.parent / "per_query.csv"
    per_query = pd.DataFrame()
    if per_query_path.is_file():
        from eci_core.io.tables import unescape_formula_cells

        with open_within(per_query_path, roots) as fh:
            per_query = unescape_formula_cells(pd.read_csv(fh, dtype={"query_id": str}))
    down = frame(doc["downstream"])
    pre, agreement = frame(doc["pretraining"]), frame(doc["agreement"])
    if not has_joint_intervals(agreement) and not per_query.empty:
        # saved before the joint bootstrap: recompute the agreement table from the per-query table
        # (the sources-only intervals come out as saved: same draws); keep the saved one if unusable
        cfg = doc["meta"].get("config") or {}
        try:
            agreement = agreement_table(
                pre,
                down,
                n_bootstrap=int(cfg.get("n_bootstrap") or 1000),
                seed=int(cfg.get("split_seed") or 0),
                per_query=per_query,
            )
        except (ValueError, KeyError):
            pass
    return ValidationResult(
        downstream=down,
        beats=beats,
        pretraining=pre,
        agreement=agreement,
        per_query=per_query,
        meta=doc["meta"],
        encoder_eci=encoder_eci,
        path=str(f.parent),
    )


def find_results(directory: str | Path) -> list[Path]:
    """Saved validations under ``directory`` (``results.json`` files, sorted)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(p.parent for p in d.rglob(RESULTS_JSON))


def validate(
    collection,
    sources: Sequence[str] | None = None,
    config: ValidationConfig = ValidationConfig(),
    encoder=None,
    cache=None,
    progress: Progress | None = None,
    agreement_encoders: Sequence[str] = (),
    score_config=None,
    device: str | None = None,
) -> ValidationResult:
    """Validate the sources of ``collection`` by training (module docstrings of ``protocol`` and
    ``analysis``). ``encoder``: the target encoder (cheap trainers: frozen; finetune: the model
    trained; None = bundled MiniLM). The pre-training numbers are ECI & co. of every source under
    that encoder (``score_collection`` with ``score_config``). ``agreement_encoders``: further
    ``load_encoder`` names whose ECI rankings are compared with the target's (Kendall τ).
    ``device``: where the target encoder encodes and finetune trains (``"cpu"``, ``"cuda"``,
    ``"cuda:N"``, ``"mps"``; None = auto)."""
    from eci_core.config import ECIConfig
    from eci_core.models.registry import encoder_identity, load_encoder
    from eci_core.scoring import score_collection

    sources = list(sources) if sources else list(collection.sources)
    trainer = None
    if device is not None:
        from eci_core.validation.trainers import make_trainer

        ft = config.trainer == "finetune"
        trainer = make_trainer(
            config.trainer,
            encoder,
            device=device,
            **({"max_seq_length": config.max_seq_length, "threads": config.threads} if ft else {}),
        )
    raw = run_protocol(
        collection, sources, config, encoder=encoder, cache=cache, progress=progress, trainer=trainer
    )
    target = load_encoder(
        encoder if config.trainer != "finetune" or encoder is not None else None, device=device or "auto"
    )
    sc = score_collection(
        collection, target, score_config or ECIConfig(), cache=cache, sources=sources, progress=progress
    )
    pre = pretraining_table(sc)
    variants = [UNTRAINED, IN_BATCH, *sources]
    down, beats = downstream_table(
        raw.per_query, variants, n_bootstrap=config.n_bootstrap, seed=config.split_seed
    )
    agree = agreement_table(
        pre, down, n_bootstrap=config.n_bootstrap, seed=config.split_seed, per_query=raw.per_query
    )
    meta = dict(raw.meta)
    own = {}
    for sp in meta.get("splits", []):
        for k, v in (sp.get("own_positive") or {}).items():
            own[k] = own.get(k, 0) + int(v)
    # per source: training negatives that were their own query's positive (kept); NaN for baselines
    down["own_positive"] = [float(own[v]) if v in own else np.nan for v in down["variant"]]
    meta["resolution"] = down.attrs.get("resolution")
    meta["n_splits"] = len(raw.meta["splits"])
    meta["pretraining_encoder"] = sc.encoder
    meta["encoder_identity"] = encoder_identity(target)
    meta["pretraining_settings"] = pretraining_settings(score_config)
    meta["source_signatures"] = source_signatures(collection, sources)
    enc_cols = {sc.encoder: sc.sources.set_index("name")["eci"]}
    for name in agreement_encoders:
        try:
            e = load_encoder(name)
        except (ValueError, TypeError, OSError) as err:
            meta.setdefault("encoder_errors", {})[name] = str(err)
            continue
        if e.name in enc_cols:
            continue
        r = score_collection(
            collection, e, score_config or ECIConfig(), cache=cache, sources=sources, progress=progress
        )
        enc_cols[r.encoder] = r.sources.set_index("name")["eci"]
    encoder_eci = pd.DataFrame(enc_cols) if len(enc_cols) > 1 else pd.DataFrame()
    return ValidationResult(down, beats, pre, agree, raw.per_query, meta, encoder_eci)


__all__ = [
    "ValidationResult",
    "validate",
    "load_results",
    "find_results",
    "source_signatures",
    "trainer_agreement",
    "BASELINES",
    "PRETRAINING_SETTINGS",
    "pretraining_settings",
]
