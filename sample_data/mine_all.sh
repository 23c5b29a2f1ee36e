#!/usr/bin/env bash
# Rebuild the mined negative sources of the pyfaq sample data (sample_data/pyfaq/negatives/)
# and its shipped embedding cache (sample_data/pyfaq/embeddings/).
#
# Build order of the sample data:
#   1. python sample_data/build.py              corpus.jsonl, queries.jsonl, qrels/ (no llm- passages)
#   2. python sample_data/add_llm_negatives.py  appends the llm- passages, writes negatives/llm.jsonl
#   3. bash sample_data/mine_all.sh             this script: the other sources, the embeddings
#
# Everything is deterministic (BM25, the bundled models, seeded sampling). Passages whose id starts
# with "llm-" (LLM-written, see README) are never mined by the miners; they enter only the
# llm+bm25ce source, through --add-negatives.
#
# Usage: bash sample_data/mine_all.sh        (from the repository root; ECI=... to use another eci)
set -euo pipefail
cd "$(dirname "$0")/.."

ECI=${ECI:-.venv/bin/eci}
D=sample_data/pyfaq
N=$D/negatives
COMMON=(--num-negatives 10 --exclude-prefix llm- --no-progress)
mkdir -p "$N"

if [ ! -f "$N/llm.jsonl" ]; then
  echo "missing $N/llm.jsonl: run python sample_data/add_llm_negatives.py first" >&2
  exit 1
fi

# 0. the shipped embedding cache (bundled MiniLM, float16) of every passage and query, and the
#    cross-encoder scores the two cross-encoder miners compute; the miners below read it.
.venv/bin/python sample_data/ship_embeddings.py "$D"

$ECI mine $D --method bm25 "${COMMON[@]}" --out $N/bm25.trec
# naive dense top-k: ranks 1-10, no filter (keeps false negatives)
$ECI mine $D --method dense "${COMMON[@]}" --out $N/dense.trec
# the same with NV-Retriever's TopK-PercPos: drop candidates above 95 % of the positive's score
$ECI mine $D --method dense --relative-margin 0.05 "${COMMON[@]}" --tag dense-percpos --out $N/dense-percpos.trec
# cross-encoder reranking of BM25 top-50 and dense top-50, no filter
$ECI mine $D --method cross-encoder "${COMMON[@]}" --out $N/cross-encoder.trec
# BM25 top-100 rescored by the cross-encoder, candidates within 1 logit of the positive removed
$ECI mine $D --method bm25+ce "${COMMON[@]}" --out $N/bm25+ce.trec
$ECI mine $D --method random --seed 0 "${COMMON[@]}" --out $N/random.trec
# the contamination case: bm25+ce plus the 3 LLM-written negatives per query (not filtered)
$ECI mine $D --method bm25+ce "${COMMON[@]}" --add-negatives $N/llm.jsonl --tag llm+bm25ce --out "$N/llm+bm25ce.trec"

# the validation sweep (sample_data/pyfaq/sweep/, 17 more sources from the same corpus: rank windows,
# TopK-PercPos margins, cross-encoder-denoised, mixtures with the LLM negatives), for `eci validate`
$ECI mine $D --sweep --exclude-prefix llm- --add-negatives $N/llm.jsonl --no-progress --out $D/sweep

# 0b. re-export the cache so it also holds the cross-encoder scores computed above
.venv/bin/python sample_data/ship_embeddings.py "$D"
