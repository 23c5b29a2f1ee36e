"""``validate()``: run the protocol, compute the tables, and save / reopen them (JSON + CSV)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from eci_core.validation.analysis import (agreement_table, downstream_table, encoder_agreement, pretraining_table,
                       trainer_agreement)
from eci_core.validation.protocol import BASELINES, IN_BATCH, UNTRAINED, ValidationConfig, run_protocol

RESULTS_JSON = "results.json"
_TEXT_COLUMNS = {"variant", "kind", "number", "pick", "name"}
FORMAT_VERSION = 1
Progress = Callable[[str, int, int], None]


def source_signatures(collection, sources: Sequence[str] | None = None) -> dict[str, str]:
    """sha1[:16] per source of its sorted ``query_id<TAB>passage_id`` lines: saved results are
    shown for loaded data only when the loaded sources have the same negatives."""
    out = {}
    for name in sources or list(collection.sources):
        s = collection.sources[name]
        lines = sorted(f"{collection.query_ids[int(q)]}\t{collection.passage_ids[int(p)]}" for q, p in zip(s.q_idx, s.p_idx))
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
    pairwise_accuracy, top1_regret, pick``). ``per_query``: variant, split, seed, query_id and
    the three measures. ``meta``: trainer, encoder, configuration, the split policy used
    (``split_policy``: official or kfold), splits (training queries used, leaked negatives,
    own-positive negatives kept, uncovered queries per source), timing, source signatures, resolution.
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

    def matches(self, collection, signatures: dict[str, str] | None = None) -> bool:
        """True when every source loaded in ``collection`` was validated here with the same negatives.
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
        """Plain statements of what the validation can and cannot resolve."""
        d = self.downstream.set_index("variant")
        out = []
        if UNTRAINED in d.index and IN_BATCH in d.index:
            ib, un = d.loc[IN_BATCH], d.loc[UNTRAINED]
            out.append(f"Training at all: in-batch only {ib['ndcg@10']:.3f} vs untrained {un['ndcg@10']:.3f} nDCG@10 "
                       f"(in-batch minus untrained {-un.get('gain', float('nan')):+.3f}, 95 % CI "
                       f"{-un.get('gain_high', float('nan')):+.3f}…{-un.get('gain_low', float('nan')):+.3f}).")
        src = self.sources
        if len(src) > 1:
            b = self.beats.loc[src, src].to_numpy()
            iu = np.triu_indices(len(src), 1)
            p = b[iu]
            resolved = int(np.sum((p >= 0.95) | (p <= 0.05)))
            sd = d.loc[src, "seed_sd"]
            seeds = (f" Seed spread (sd over seeds of a source's mean): {np.nanmin(sd):.4f}–{np.nanmax(sd):.4f}."
                     if np.isfinite(sd.to_numpy(dtype=float)).any() else " One seed: the seed spread is not measured.")
            out.append(f"Resolution: paired differences smaller than about {self.resolution:.3f} nDCG@10 are within noise "
                       f"(median half-width of the 95 % interval of a paired difference); {resolved} of {p.size} "
                       f"source pairs are resolved (P ≥ 0.95 either way).{seeds}")
            spread = float(d.loc[src, "ndcg@10"].max() - d.loc[src, "ndcg@10"].min())
            if spread < self.resolution:
                out.append(f"All sources lie within {spread:.3f} nDCG@10 of each other, below the resolution: this "
                           "validation cannot tell them apart.")
        own = self.own_positive()
        if any(own.values()):
            out.append("Trained as given: negatives that are their own query's labelled positive (kept, summed over "
                       "splits): " + ", ".join(f"{k} {v}" for k, v in own.items() if v) + ".")
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
        """One sentence: which source trained best and whether ECI agreed (ρ with its interval)."""
        best = self.best_source()
        d = self.downstream.set_index("variant")
        row = d.loc[best]
        policy = self.meta.get("split_policy")
        splits = ("the official split" if policy == "official" else
                  f"{self.meta.get('n_splits', '?')} {'k-fold ' if policy == 'kfold' else ''}split(s)")
        text = (f"Validation ({self.trainer} trainer, {splits} × "
                f"{int(row['n_seeds'])} seed(s)): {best} trained best (nDCG@10 {row['ndcg@10']:.3f}, 95 % CI "
                f"{row['ndcg@10_low']:.3f}–{row['ndcg@10_high']:.3f}")
        if IN_BATCH in d.index and not math.isnan(row.get("gain", float("nan"))):
            text += f"; {row['gain']:+.3f} over in-batch only"
        text += ")."
        eci = self.agreement[self.agreement["number"] == "ECI"]
        if len(eci):
            e = eci.iloc[0]
            agree = "agreed with" if e["spearman_low"] > 0 else ("ranked against" if e["spearman_high"] < 0 else "did not reliably agree with")
            regret = "" if e["pick"] == best else " (regret {:.3f} nDCG@10)".format(e["top1_regret"])
            text += (f" ECI {agree} training: Spearman ρ = {e['spearman']:.2f} (95 % CI {e['spearman_low']:.2f}…"
                     f"{e['spearman_high']:.2f}) over {int(e['n'])} sources; ECI's pick {e['pick']} "
                     f"{'is' if e['pick'] == best else 'is not'} the best-training source{regret}.")
        return text

    # ------------------------------------------------------------------ saving
    def save(self, directory: str | Path) -> Path:
        """Write ``results.json`` (everything) and CSV copies of the tables to ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        doc = {
            "format_version": FORMAT_VERSION,
            "meta": _jsonable(self.meta),
            "downstream": _records(self.downstream),
            "beats": {"index": list(map(str, self.beats.index)), "values": _jsonable(self.beats.to_numpy().tolist())},
            "pretraining": _records(self.pretraining),
            "agreement": _records(self.agreement),
            "encoder_eci": {"index": list(map(str, self.encoder_eci.index)), "columns": list(map(str, self.encoder_eci.columns)),
                            "values": _jsonable(self.encoder_eci.to_numpy().tolist())} if not self.encoder_eci.empty else None,
            "notes": self.notes(),
            "summary": self.summary(),
        }
        (out / RESULTS_JSON).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        self.downstream.to_csv(out / "downstream.csv", index=False)
        self.agreement.to_csv(out / "agreement.csv", index=False)
        self.pretraining.to_csv(out / "pretraining.csv", index=False)
        self.beats.to_csv(out / "beats.csv")
        self.per_query.to_csv(out / "per_query.csv", index=False)
        if not self.encoder_eci.empty:
            self.encoder_eci.to_csv(out / "encoder_eci.csv")
        return out


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


def load_results(directory: str | Path) -> ValidationResult:
    """Reopen a saved validation (``results.json`` in ``directory``, or the file itself) without
    recomputing. Raises ``ValueError`` naming the file when it is not a validation result."""
    p = Path(directory)
    f = p / RESULTS_JSON if p.is_dir() else p
    if not f.is_file():
        raise FileNotFoundError(f"{f}: no saved validation here (run `eci validate DIR --out {p}` first)")
    try:
        doc = json.loads(f.read_text(encoding="utf-8"))
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
    beats = pd.DataFrame([[nan(v) for v in row] for row in b["values"]], index=pd.Index(b["index"], name="a"),
                         columns=pd.Index(b["index"], name="b"), dtype=float)
    enc = doc.get("encoder_eci")
    encoder_eci = (pd.DataFrame([[nan(v) for v in row] for row in enc["values"]], index=enc["index"], columns=enc["columns"], dtype=float)
                   if enc else pd.DataFrame())
    per_query_path = f.parent / "per_query.csv"
    per_query = pd.read_csv(per_query_path, dtype={"query_id": str}) if per_query_path.is_file() else pd.DataFrame()
    down = frame(doc["downstream"])
    return ValidationResult(downstream=down, beats=beats, pretraining=frame(doc["pretraining"]),
                            agreement=frame(doc["agreement"]), per_query=per_query, meta=doc["meta"],
                            encoder_eci=encoder_eci, path=str(f.parent))


def find_results(directory: str | Path) -> list[Path]:
    """Saved validations under ``directory`` (``results.json`` files, sorted)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(p.parent for p in d.rglob(RESULTS_JSON))


def validate(collection, sources: Sequence[str] | None = None, config: ValidationConfig = ValidationConfig(),
             encoder=None, cache=None, progress: Progress | None = None, agreement_encoders: Sequence[str] = (),
             score_config=None) -> ValidationResult:
    """Validate the sources of ``collection`` by training (module docstrings of ``protocol`` and
    ``analysis``). ``encoder``: the target encoder (cheap trainers: frozen; finetune: the model
    trained; None = bundled MiniLM). The pre-training numbers are ECI & co. of every source under
    that encoder (``score_collection`` with ``score_config``). ``agreement_encoders``: further
    ``load_encoder`` names whose ECI rankings are compared with the target's (Kendall τ)."""
    from eci_core.config import ECIConfig
    from eci_core.models.encoders import load_encoder
    from eci_core.scoring import score_collection

    sources = list(sources) if sources else list(collection.sources)
    raw = run_protocol(collection, sources, config, encoder=encoder, cache=cache, progress=progress)
    target = load_encoder(encoder if config.trainer != "finetune" or encoder is not None else None)
    sc = score_collection(collection, target, score_config or ECIConfig(), cache=cache, sources=sources, progress=progress)
    pre = pretraining_table(sc)
    variants = [UNTRAINED, IN_BATCH, *sources]
    down, beats = downstream_table(raw.per_query, variants, n_bootstrap=config.n_bootstrap, seed=config.split_seed)
    agree = agreement_table(pre, down, n_bootstrap=config.n_bootstrap, seed=config.split_seed)
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
        r = score_collection(collection, e, score_config or ECIConfig(), cache=cache, sources=sources, progress=progress)
        enc_cols[r.encoder] = r.sources.set_index("name")["eci"]
    encoder_eci = pd.DataFrame(enc_cols) if len(enc_cols) > 1 else pd.DataFrame()
    return ValidationResult(down, beats, pre, agree, raw.per_query, meta, encoder_eci)


__all__ = ["ValidationResult", "validate", "load_results", "find_results", "source_signatures", "trainer_agreement",
           "BASELINES"]
