"""Build the predictor's training tables and fit it (eci_core/validation/predictor.py).

Two steps, so the fit is reproducible from small shipped tables without the datasets:

1. ``build``: score one dataset's sources before training (bundled MiniLM, default ECI
   settings, the embedding cache) and join the per-source features with the gains of its
   fine-tuning reference (a folder written by ``eci validate --trainer finetune --out``). Writes
   ``bench/results/predictor/features_<NAME>.csv`` and ``beats_<NAME>.csv`` (source × source
   P(row trains better than column) of the reference). Tables only: no text of the dataset.

       python bench/fit_predictor.py build --name pyfaq --reference sample_data/pyfaq/validation/finetune \\
           sample_data/pyfaq

2. ``fit``: read every ``features_*.csv`` / ``beats_*.csv``, evaluate leave-one-dataset-out,
   fit on all datasets and write the shipped model (``eci_core/validation/predictor.json``) with
   the held-out numbers inside. tests/test_predictor.py checks that this reproduces the shipped
   file.

       python bench/fit_predictor.py fit
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eci_core.validation import predictor as P  # noqa: E402

TABLES = ROOT / "bench" / "results" / "predictor"


def build(
    name: str, paths: list[str], reference: str, out: Path = TABLES, cache_dir: str | None = None
) -> Path:
    from eci_core.config import ECIConfig
    from eci_core.io.load import load_paths
    from eci_core.models.cache import EmbeddingCache
    from eci_core.models.registry import load_encoder
    from eci_core.scoring import score_collection
    from eci_core.validation.results import load_results

    ref = load_results(reference)
    sources = [s for s in ref.sources]
    coll, _ = load_paths(paths)
    missing = [s for s in sources if s not in coll.sources]
    if missing:
        raise SystemExit(f"{paths}: the reference's sources {missing} are not in the loaded data")
    shipped = [Path(p) / "embeddings" for p in paths if (Path(p) / "embeddings").is_dir()]
    result = score_collection(
        coll,
        load_encoder(None),
        ECIConfig(),
        cache=EmbeddingCache(cache_dir, readonly_dirs=shipped),
        sources=sources,
    )
    feats = P.feature_table(result)
    down = ref.downstream[ref.downstream["kind"] == "source"].set_index("variant")
    feats["gain"] = feats["source"].map(down["gain"]).astype(float)
    feats.insert(0, "dataset", name)
    feats["encoder"] = str(result.encoder)
    for k, v in P.settings_of(result.config).items():
        feats[f"setting_{k}"] = v
    out.mkdir(parents=True, exist_ok=True)
    feats.to_csv(out / f"features_{name}.csv", index=False)
    # P(A trains better than B): the joint bootstrap over test queries and seeds when the
    # per-query table allows it (ValidationResult.effect), else the saved one
    beats = ref.effect.beats if ref.effect is not None else ref.beats
    beats.loc[sources, sources].to_csv(out / f"beats_{name}.csv")
    return out / f"features_{name}.csv"


def read_tables(folder: Path = TABLES) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    files = sorted(folder.glob("features_*.csv"))
    if not files:
        raise SystemExit(f"{folder}: no features_*.csv (run `build` first)")
    table = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    beats = {}
    for name in table["dataset"].unique():
        f = folder / f"beats_{name}.csv"
        if f.is_file():
            beats[str(name)] = pd.read_csv(f, index_col=0)
    return table, beats


def fit_and_evaluate(folder: Path = TABLES, alpha: float = 1.0) -> P.Predictor:
    table, beats = read_tables(folder)
    rows = P.leave_one_dataset_out(table, beats, alpha=alpha)
    model = P.fit(table, alpha=alpha)
    model.reliability = rows
    encoders = sorted(table["encoder"].unique()) if "encoder" in table else []
    if len(encoders) > 1:
        raise SystemExit(
            f"{folder}: the tables were scored under different encoders {encoders}; rebuild them under one"
        )
    model.encoder = encoders[0] if encoders else ""
    model.settings = {k: table[f"setting_{k}"].iloc[0] for k in P.FEATURE_SETTINGS if f"setting_{k}" in table}
    return model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="features + reference gains of one dataset")
    b.add_argument(
        "paths", nargs="+", help="the dataset as `eci score` reads it (BEIR folder, extra run files)"
    )
    b.add_argument("--name", required=True, help="dataset name (file suffix)")
    b.add_argument("--reference", required=True, help="folder of the dataset's finetune validation (--out)")
    b.add_argument("--cache-dir", default=None, help="embedding cache (default: the user cache)")
    f = sub.add_parser("fit", help="leave-one-dataset-out evaluation and the shipped model")
    f.add_argument(
        "--alpha", type=float, default=1.0, help="ridge penalty on standardised features (default 1.0)"
    )
    f.add_argument(
        "--out", default=str(P.SHIPPED), help="where to write the model (default: the shipped one)"
    )
    args = ap.parse_args(argv)
    if args.cmd == "build":
        print(build(args.name, args.paths, args.reference, cache_dir=args.cache_dir))
        return 0
    model = fit_and_evaluate(alpha=args.alpha)
    model.save(args.out)
    for r in model.reliability:
        print(json.dumps(r))
    print(model.reliability_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
