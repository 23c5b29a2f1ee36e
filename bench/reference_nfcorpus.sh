#!/usr/bin/env bash
# The NFCorpus fine-tuning reference of issue 15 (and the cheap trainers on the same setup),
# reproduced from the shared BEIR copy. NFCorpus is for academic use only: nothing of it is
# written into the repository; everything goes to $W (default /tmp/nfc). Only the result tables
# (results.json / CSV, no passage text) are copied to bench/results/nfcorpus/ afterwards.
#
#   bench/reference_nfcorpus.sh mine       # 14 sources for the 2,590 training queries (qrels/train.tsv)
#   bench/reference_nfcorpus.sh finetune   # the reference: eci validate --trainer finetune, official split
#   bench/reference_nfcorpus.sh cheap      # linear and linear-both on the same sources and split
#   bench/reference_nfcorpus.sh report     # the tables of BENCHMARKS.md (bench/reference_tables.py)
#   bench/reference_nfcorpus.sh all
#
# Run from the repository root. ECI / PY / DATA / W may be overridden from the environment.
set -euo pipefail
DATA=${DATA:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/beir/nfcorpus}
[ -f "$DATA/corpus.jsonl" ] || DATA=/work/shared/data/beir/nfcorpus
W=${W:-/tmp/nfc}
PY=${PY:-python}
ECI=${ECI:-"$PY -m eci_core.cli"}
CACHE=${CACHE:-$W/cache}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

setup() {
  mkdir -p "$W/negatives" "$W/aux"
  ln -sfn "$DATA/corpus.jsonl" "$W/corpus.jsonl"
  ln -sfn "$DATA/queries.jsonl" "$W/queries.jsonl"
  ln -sfn "$DATA/qrels" "$W/qrels"
}

mine_one() {  # name, then eci mine arguments; mined for the training queries only
  local name=$1; shift
  $ECI mine "$W" --split train --cache-dir "$CACHE" --no-progress --tag "$name" --out "$W/negatives/$name.trec" "$@"
}

mine() {
  setup
  local N=$W/negatives
  # hardness: dense (bundled MiniLM) rank windows, from the top down to far ranks
  mine_one dense-1-3     --method dense --num-negatives 3
  mine_one dense-1-5     --method dense --num-negatives 5
  mine_one dense-1-10    --method dense --num-negatives 10
  mine_one dense-1-30    --method dense --num-negatives 30
  mine_one dense-11-30   --method dense --num-negatives 10 --range-min 10 --range-max 30 --sampling-strategy random
  mine_one dense-31-100  --method dense --num-negatives 10 --range-min 30 --range-max 100 --sampling-strategy random
  mine_one dense-101-300 --method dense --num-negatives 10 --range-min 100 --range-max 300 --sampling-strategy random
  # filters: NV-Retriever TopK-PercPos (relative margin to the positive's score; the positive is
  # the query's first qrels line, often weakly related on NFCorpus: with the default window of
  # 100 candidates 93 % of the queries found no negative, so the whole corpus is the window)
  mine_one dense-percpos-0.05 --method dense --num-negatives 10 --relative-margin 0.05 --range-max 3633
  mine_one dense-percpos-0.1  --method dense --num-negatives 10 --relative-margin 0.1 --range-max 3633
  # lexical
  mine_one bm25-1-10     --method bm25 --num-negatives 10
  mine_one bm25-11-30    --method bm25 --num-negatives 10 --range-min 10 --range-max 30 --sampling-strategy random
  mine_one bm25-percpos-0.05 --method bm25 --num-negatives 10 --relative-margin 0.05 --range-max 3633
  # random
  mine_one random        --method random --num-negatives 10
  # mixtures (--add-negatives: a second list added to the mined one, unfiltered)
  $ECI mine "$W" --split train --no-progress --method random --num-negatives 5 --seed 1 --tag random-5 --out "$W/aux/random-5.trec"
  mine_one mix-dense5+random5 --method dense --num-negatives 5 --add-negatives "$W/aux/random-5.trec"
  mine_one mix-bm25-5+dense5  --method bm25 --num-negatives 5 --add-negatives "$N/dense-1-5.trec"
}

# The compared sources (>= 8, spread in hardness, random and a TopK-PercPos-filtered dense one).
SOURCES=${SOURCES:-dense-1-3,dense-1-10,dense-11-30,dense-31-100,dense-percpos-0.05,bm25-1-10,random,mix-dense5+random5}
SEEDS=${SEEDS:-3}
# The reference budget, sized for the shared 2-core CPU (BENCHMARKS.md "Validation: NFCorpus
# fine-tuning reference" records the timings): 25 steps x 16 anchors = 400 training queries drawn
# (a seeded permutation of those every source covers), 3 hard negatives per anchor, 64 tokens
# for training and for re-encoding the whole corpus (3,633 passages), lr 5e-5 (the default).
FT_STEPS=${FT_STEPS:-25}
FT_BATCH=${FT_BATCH:-16}
FT_SEQ=${FT_SEQ:-64}
FT_NEG=${FT_NEG:-3}
FT_THREADS=${FT_THREADS:-2}

finetune() {  # one call per seed (each saved on its own: a run cut short keeps its finished seeds), then merged
  setup
  local dirs=()
  for ((s = 0; s < SEEDS; s++)); do
    echo "== seed $s: $(date -u +%H:%M:%S), load: $(cut -d' ' -f1-3 /proc/loadavg)"
    $ECI validate "$W" --split-policy official --trainer finetune --sources "$SOURCES" --first-seed "$s" --seeds 1 \
      --steps "$FT_STEPS" --batch-size "$FT_BATCH" --max-seq-length "$FT_SEQ" --negatives-per-example "$FT_NEG" \
      --threads "$FT_THREADS" --cache-dir "$CACHE" --out "$W/val_finetune/seed$s"
    dirs+=("$W/val_finetune/seed$s")
  done
  echo "== done: $(date -u +%H:%M:%S)"
  $PY "$(dirname "$0")/reference_tables.py" merge "$W/val_finetune/merged" "${dirs[@]}"
}

cheap() {  # the cheap trainers (lr 1e-3), same sources, split and seeds, at three budgets
  setup
  for t in linear linear-both; do
    # the earlier default budget, 100 steps x 32 (rows `linear`, `linear-both`)
    /usr/bin/time -f "%U %S %e" -o "$W/time_$t.txt" $ECI validate "$W" --split-policy official --trainer "$t" \
      --steps 100 --batch-size 32 --sources "$SOURCES" --seeds "$SEEDS" --cache-dir "$CACHE" --no-progress \
      --out "$W/val_$t" > "$W/val_$t.log"
    echo "$t: user system elapsed (s): $(cat "$W/time_$t.txt")"
    # today's default: one epoch of the training queries at batch 16 (rows `*-epoch`)
    /usr/bin/time -f "%U %S %e" -o "$W/time_$t-epoch.txt" $ECI validate "$W" --split-policy official --trainer "$t" \
      --sources "$SOURCES" --seeds "$SEEDS" --cache-dir "$CACHE" --no-progress --out "$W/val_$t-epoch" \
      > "$W/val_$t-epoch.log"
    echo "$t at one epoch: user system elapsed (s): $(cat "$W/time_$t-epoch.txt")"
    # the same trainer on the reference's budget (steps, batch): does the budget explain a disagreement?
    /usr/bin/time -f "%U %S %e" -o "$W/time_$t-refbudget.txt" $ECI validate "$W" --split-policy official --trainer "$t" \
      --sources "$SOURCES" --seeds "$SEEDS" --steps "$FT_STEPS" --batch-size "$FT_BATCH" --cache-dir "$CACHE" --no-progress \
      --out "$W/val_$t-refbudget" > "$W/val_$t-refbudget.log"
    echo "$t at the reference budget: user system elapsed (s): $(cat "$W/time_$t-refbudget.txt")"
  done
  # the top transformer layer only, at the reference's budget and sequence length (lr: its default 1e-4)
  /usr/bin/time -f "%U %S %e" -o "$W/time_top-layers.txt" $ECI validate "$W" --split-policy official \
    --trainer top-layers --sources "$SOURCES" --seeds "$SEEDS" --steps "$FT_STEPS" --batch-size "$FT_BATCH" \
    --max-seq-length "$FT_SEQ" --negatives-per-example "$FT_NEG" --threads "$FT_THREADS" --cache-dir "$CACHE" \
    --no-progress --out "$W/val_top-layers" > "$W/val_top-layers.log"
  echo "top-layers: user system elapsed (s): $(cat "$W/time_top-layers.txt")"
}

report() {
  local args=()
  for t in linear linear-both; do
    [ -f "$W/time_$t.txt" ] && args+=(--time "$t=$(awk '{print $1 + $2}' "$W/time_$t.txt")")
  done
  for t in linear-refbudget linear-both-refbudget top-layers linear-epoch linear-both-epoch; do
    [ -f "$W/time_$t.txt" ] && args+=(--time "$t=$(awk '{print $1 + $2}' "$W/time_$t.txt")")
  done
  $PY "$(dirname "$0")/reference_tables.py" report "$W/val_finetune/merged" "$W/val_linear" "$W/val_linear-both" \
    "$W/val_linear-refbudget" "$W/val_linear-both-refbudget" "$W/val_top-layers" "$W/val_linear-epoch" \
    "$W/val_linear-both-epoch" "${args[@]}" --json "$W/report.json"
}

case "${1:-all}" in
  mine) mine ;;
  finetune) finetune ;;
  cheap) cheap ;;
  report) report ;;
  all) mine; finetune; cheap; report ;;
  *) echo "usage: $0 mine|finetune|cheap|report|all" >&2; exit 2 ;;
esac
