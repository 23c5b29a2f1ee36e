"""Trainers behind one small interface: train on a batch plan, return test-time embeddings.

Every trainer minimises the same loss, sentence-transformers' ``MultipleNegativesRankingLoss``
(InfoNCE with in-batch negatives): for a batch of B anchors a_i with positives p_i and m hard
negatives n_ij each, the candidates are all B positives and all B·m negatives of the batch, and

    L = −(1/B) Σ_i log softmax_j(scale · cos(a_i, c_j))[p_i]        (scale = 20)

With no hard negatives (the "in-batch only" baseline) the candidates are the B positives.

``linear``      a d×d linear map W (initialised to the identity) applied to the frozen
                embeddings of the queries: q' = normalize(W q); passages stay frozen. Seconds on
                a CPU; reuses the embedding cache.
``linear-both`` the same map applied to queries and passages (a shared adapter); the corpus is
                re-projected after training (a matrix product).
``top-layers``  only the top transformer layer(s) of the target model trained, on hidden states of
                the frozen lower layers computed once per text (``top_layers.py``); the corpus
                is re-encoded through the trained top layers only.
``finetune``    the reference: every weight of the target sentence-transformers model trained
                with ``sentence_transformers.losses.MultipleNegativesRankingLoss`` in a plain
                AdamW loop (constant learning rate), on CUDA / MPS when present, else CPU; the
                corpus is re-encoded with each trained model (each distinct text once).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from eci_core.models.device import detect_device

Progress = Callable[[str, int, int], None]
#: MultipleNegativesRankingLoss' default scale (1 / temperature).
SCALE = 20.0


@dataclass(frozen=True)
class Batch:
    """One training step: query indices (B,), positive passage indices (B,) and hard-negative
    passage indices (B, m), or ``None`` for in-batch negatives only."""

    anchors: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray | None


class Trainer(Protocol):
    name: str
    default_lr: float

    def setup(
        self, collection, eval_passages: np.ndarray, cache=None, progress: Progress | None = None
    ) -> None:
        """Load what every run shares (e.g. frozen embeddings of all queries and passages)."""

    def run(
        self,
        batches: Sequence[Batch] | None,
        seed: int,
        lr: float,
        test_queries: np.ndarray,
        progress: Progress | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Train on ``batches`` (``None``: the untrained encoder) and return L2-normalised
        embeddings of ``test_queries`` (n_test, d) and of the evaluation passages (n_eval, d):
        the passage indices in the attribute ``eval_passages`` (set by ``setup``; the protocol
        may narrow it to a pool)."""


def _normalize(x):
    import torch

    return torch.nn.functional.normalize(x, dim=-1)


def mnrl_loss(a, p, n, scale: float = SCALE):
    """MultipleNegativesRankingLoss on embeddings: a (B, d), p (B, d), n (B, m, d) or None."""
    import torch

    cands = p if n is None else torch.cat([p, n.reshape(-1, n.shape[-1])], dim=0)
    logits = scale * _normalize(a) @ _normalize(cands).T
    return torch.nn.functional.cross_entropy(logits, torch.arange(a.shape[0]))


class LinearTrainer:
    """A linear map on frozen embeddings (module docstring): ``side="query"`` (``linear``) or
    ``"both"`` (``linear-both``). Deterministic for a seed (CPU, fixed initialisation)."""

    default_lr = 1e-3

    def __init__(self, encoder, side: str = "query", weight_decay: float = 0.0):
        if side not in ("query", "both"):
            raise ValueError(f"side={side!r}: use 'query' or 'both'")
        self.encoder = encoder
        self.side = side
        self.name = "linear" if side == "query" else "linear-both"
        self.weight_decay = weight_decay

    def setup(self, collection, eval_passages, cache=None, progress=None) -> None:
        from eci_core.models.encoding import embed

        self.q_emb = np.asarray(
            embed(self.encoder, list(collection.query_texts), "query", cache=cache, progress=progress),
            np.float32,
        )
        self.p_emb = np.asarray(
            embed(self.encoder, list(collection.passage_texts), "passage", cache=cache, progress=progress),
            np.float32,
        )
        self.eval_passages = np.asarray(eval_passages, dtype=np.int64)

    def run(self, batches, seed, lr, test_queries, progress=None):
        if batches is None:
            return self.q_emb[np.asarray(test_queries, dtype=np.int64)], self.p_emb[self.eval_passages]
        return self.run_many([batches], seed, lr, test_queries)[0]

    def run_many(self, variants, seed, lr, test_queries, progress=None):
        """Train one map per batch list of ``variants`` at once (stacked, one thread): the same
        result as separate runs, since each map only sees its own loss and AdamW is elementwise.
        Every list must have the same anchors and positives (the protocol's equal budget)."""
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny matrices: one thread is faster on a busy CPU, and reproducible
        try:
            return self._run_many(variants, seed, lr, test_queries)
        finally:
            torch.set_num_threads(threads)

    def _run_many(self, variants, seed, lr, test_queries):
        import torch

        q_test = self.q_emb[np.asarray(test_queries, dtype=np.int64)]
        p_eval = self.p_emb[self.eval_passages]
        torch.manual_seed(int(seed))
        V, d = len(variants), self.q_emb.shape[1]
        w = torch.nn.Parameter(torch.eye(d).repeat(V, 1, 1))
        opt = torch.optim.AdamW([w], lr=lr, weight_decay=self.weight_decay)
        Q = torch.from_numpy(self.q_emb)
        P = torch.from_numpy(self.p_emb)
        both = self.side == "both"
        n_steps = len(variants[0])
        for step in range(n_steps):
            b0 = variants[0][step]
            a = Q[torch.from_numpy(b0.anchors)]  # (B, d), shared
            p = P[torch.from_numpy(b0.positives)]  # (B, d), shared
            B = a.shape[0]
            a_v = torch.matmul(a, w.transpose(1, 2))  # (V, B, d)
            p_v = torch.matmul(p, w.transpose(1, 2)) if both else p.expand(V, B, d)
            cands = [p_v]
            has_neg = [bl[step].negatives is not None for bl in variants]
            if any(has_neg):
                if not all(has_neg):
                    raise ValueError("run_many: every variant of one call needs hard negatives, or none does")
                n = torch.stack(
                    [P[torch.from_numpy(bl[step].negatives.reshape(-1))] for bl in variants]
                )  # (V, B·m, d)
                cands.append(torch.matmul(n, w.transpose(1, 2)) if both else n)
            c = torch.cat(cands, dim=1)  # (V, B + B·m, d)
            logits = SCALE * torch.matmul(_normalize(a_v), _normalize(c).transpose(1, 2))  # (V, B, C)
            target = torch.arange(B).repeat(V)
            loss = torch.nn.functional.cross_entropy(logits.reshape(V * B, -1), target, reduction="sum") / B
            opt.zero_grad()
            loss.backward()
            opt.step()
        out = []
        with torch.no_grad():
            qt, pt = torch.from_numpy(q_test), torch.from_numpy(p_eval)
            for v in range(V):
                wt = w[v].detach().T
                qe = _normalize(qt @ wt).numpy()
                pe = _normalize(pt @ wt).numpy() if both else p_eval
                out.append((np.ascontiguousarray(qe, np.float32), np.ascontiguousarray(pe, np.float32)))
        return out


def training_device(device: str | None) -> str:
    """The one torch device a fine-tune runs on, from a ``--device`` value: ``None`` / ``"auto"``
    → CUDA, else MPS, else CPU (:func:`~eci_core.models.device.detect_device`); ``"cpu"``,
    ``"cuda"``, ``"cuda:N"``, ``"mps"`` → that device, checked to exist here. Raises
    ``ValueError`` naming the value for anything else (a comma-separated list included:
    training runs on one device)."""
    from eci_core.models.device import resolve_devices

    if device is None or (isinstance(device, str) and device.strip().lower() in ("", "auto")):
        return detect_device()
    d = str(device).strip().lower()
    if "," in d:
        raise ValueError(
            f"device={device!r}: a fine-tune trains on one device; name one (e.g. cuda:0 or cpu)"
        )
    resolve_devices(d)  # ValueError for an unknown device or one this machine does not have
    return d


class FinetuneTrainer:
    """Full fine-tuning of a local sentence-transformers model (module docstring).

    ``model_path``: the model folder (default: the bundled all-MiniLM-L6-v2);
    ``max_seq_length``: truncation for training and re-encoding (None = the model's own);
    ``device``: one torch device (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``); ``None`` or
    ``"auto"`` detects CUDA / MPS / CPU. The untrained baseline is the same model encoding with
    the same settings (read from the embedding cache when it holds them). :attr:`encoder` is that
    untrained encoder; its ``name`` (``all-MiniLM-L6-v2 (bundled)`` or the model folder's name,
    never a path of this machine) is what saved results record."""

    name = "finetune"
    default_lr = 5e-5  # the default of sentence-transformers' (Hugging Face's) trainer

    def __init__(
        self,
        model_path=None,
        max_seq_length: int | None = None,
        device: str | None = None,
        encode_batch_size: int = 64,
        threads: int | None = None,
    ):
        from eci_core.models.base import BUNDLED_ENCODER_NAME
        from eci_core.models.st_encoder import SentenceTransformerEncoder, bundled_minilm_path

        self.model_path = str(model_path or bundled_minilm_path())
        self.max_seq_length = max_seq_length
        self.device = training_device(device)
        self.encode_batch_size = encode_batch_size
        self.threads = threads  # CPU threads for training and re-encoding (None: torch's default)
        self.base_encoder = SentenceTransformerEncoder(
            self.model_path,
            name=None if model_path else BUNDLED_ENCODER_NAME,
            max_seq_length=max_seq_length,
            device=self.device,
        )
        self._base_model = None

    @property
    def encoder(self):
        """The untrained target encoder (the first baseline); results record its ``name``."""
        return self.base_encoder

    def setup(self, collection, eval_passages, cache=None, progress=None) -> None:
        self.collection = collection
        self.eval_passages = np.asarray(eval_passages, dtype=np.int64)
        self.cache = cache

    def _base(self):
        if self._base_model is None:
            from sentence_transformers import SentenceTransformer

            m = SentenceTransformer(
                self.model_path, device=self.device, trust_remote_code=False, local_files_only=True
            )
            if self.max_seq_length is not None:
                m.max_seq_length = self.max_seq_length
            self._base_model = m
        return self._base_model

    def _encode(self, model, texts: list[str], which: str, progress, stage: str) -> np.ndarray:
        uniq, inv = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
        uniq = uniq.tolist()
        fn = model.encode_query if which == "query" else model.encode_document
        out = []
        step = 256
        for s in range(0, len(uniq), step):
            out.append(
                fn(
                    uniq[s : s + step],
                    batch_size=self.encode_batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
            )
            if progress:
                progress(stage, min(s + step, len(uniq)), len(uniq))
        emb = (
            np.concatenate(out, axis=0)
            if out
            else np.zeros((0, model.get_sentence_embedding_dimension()), np.float32)
        )
        return np.asarray(emb[inv], dtype=np.float32)

    def run(self, batches, seed, lr, test_queries, progress=None):
        coll = self.collection
        q_texts = [coll.query_texts[int(q)] for q in test_queries]
        p_texts = [coll.passage_texts[int(p)] for p in self.eval_passages]
        if batches is None:
            from eci_core.models.encoding import embed

            return (
                np.asarray(embed(self.base_encoder, q_texts, "query", cache=self.cache), np.float32),
                np.asarray(
                    embed(self.base_encoder, p_texts, "passage", cache=self.cache, progress=progress),
                    np.float32,
                ),
            )
        import torch

        threads = torch.get_num_threads()
        if self.device == "cpu" and self.threads:
            torch.set_num_threads(self.threads)
        try:
            return self._train(batches, seed, lr, q_texts, p_texts, progress)
        finally:
            torch.set_num_threads(threads)

    def _train(self, batches, seed, lr, q_texts, p_texts, progress):
        import torch

        try:  # sentence-transformers >= 6 moved the losses
            from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
        except ImportError:
            from sentence_transformers.losses import MultipleNegativesRankingLoss

        coll = self.collection
        torch.manual_seed(int(seed))
        model = copy.deepcopy(self._base())
        model.to(self.device)
        model.train()
        loss_fn = MultipleNegativesRankingLoss(model, scale=SCALE)
        opt = torch.optim.AdamW(model.parameters(), lr=lr)

        prep = getattr(model, "preprocess", None) or model.tokenize  # sentence-transformers >= 6 / older

        def feats(texts):
            f = prep(texts)
            return {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in f.items()}

        for i, b in enumerate(batches):
            cols = [
                [coll.query_texts[int(q)] for q in b.anchors],
                [coll.passage_texts[int(p)] for p in b.positives],
            ]
            if b.negatives is not None:
                for j in range(b.negatives.shape[1]):
                    cols.append([coll.passage_texts[int(p)] for p in b.negatives[:, j]])
            loss = loss_fn([feats(c) for c in cols], None)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if progress:
                progress("Fine-tuning", i + 1, len(batches))
        model.eval()
        with torch.no_grad():
            qe = self._encode(model, q_texts, "query", None, "")
            pe = self._encode(model, p_texts, "passage", progress, "Re-encoding the corpus")
        del model, opt
        return qe, pe


TRAINERS = ("linear", "linear-both", "top-layers", "finetune")


def make_trainer(name: str, encoder=None, device: str | None = None, **kwargs) -> Trainer:
    """The trainer called ``name`` (one of :data:`TRAINERS`). ``encoder`` is the frozen target
    encoder of the cheap trainers (an Encoder or a ``load_encoder`` name); ``finetune`` trains a
    local sentence-transformers folder (``encoder`` as a folder path, or None / "minilm" for the
    bundled MiniLM); ``device`` (None = auto) is where the frozen encoder encodes, or where
    finetune trains (:func:`training_device`); ``kwargs`` go to the trainer (e.g.
    ``max_seq_length`` for finetune)."""
    from eci_core.models.base import BUNDLED_ENCODER_ALIASES
    from eci_core.models.registry import load_encoder

    if name in ("linear", "linear-both"):
        return LinearTrainer(
            load_encoder(encoder, device=device or "auto"),
            side="query" if name == "linear" else "both",
            **kwargs,
        )
    if name == "finetune":
        path = None
        if encoder is not None and not (
            isinstance(encoder, str) and encoder.strip().lower() in BUNDLED_ENCODER_ALIASES
        ):
            path = getattr(encoder, "path", encoder)
        return FinetuneTrainer(path, device=device, **kwargs)
    if name == "top-layers":
        from eci_core.validation.top_layers import TopLayersTrainer

        path = None
        if encoder is not None and not (
            isinstance(encoder, str) and encoder.strip().lower() in BUNDLED_ENCODER_ALIASES
        ):
            path = getattr(encoder, "path", encoder)
        return TopLayersTrainer(path, device=device, **kwargs)
    raise ValueError(f"trainer={name!r}: use one of {', '.join(TRAINERS)}")
