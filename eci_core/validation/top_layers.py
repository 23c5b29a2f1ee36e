"""The ``top-layers`` trainer: fine-tune only the top transformer layer(s) of the target model.

A cheap trainer between the linear maps and full fine-tuning. The model's lower layers stay
frozen, so their output for every text the protocol needs (training queries and passages, test
queries, the evaluation corpus) is computed **once** (:meth:`TopLayersTrainer.setup`, each distinct
text once) and kept in memory; every run then trains copies of the top ``layers`` transformer
layers on those cached hidden states with the same loss as the other trainers
(``trainers.mnrl_loss``: MultipleNegativesRankingLoss, scale 20, in-batch and hard negatives),
and re-encodes the corpus through the trained top layers only, followed by the model's own mean
pooling and L2 normalisation. A run therefore costs about ``layers / n_layers`` of a full
fine-tune's forward passes (1/6 for MiniLM-L6 with ``layers=1``), after one frozen pass.

Untrained, it reproduces the model's own embeddings (tests/test_top_layers.py checks this to
float32 rounding). Supports sentence-transformers models whose first module is a Hugging Face
BERT-style encoder (``auto_model.encoder.layer``) followed by mean pooling (all-MiniLM-L6-v2,
bge-small, e5); anything else is refused with a message naming the model.

Memory: the cached hidden states take 4 · Σ_texts tokens · d bytes (3,600 passages of 128 tokens
at d = 384: ~0.7 GB).
"""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from eci_core.models.device import detect_device
from eci_core.validation.trainers import mnrl_loss


class TopLayersTrainer:
    """Trains the top ``layers`` transformer layers of a local sentence-transformers model
    (module docstring). ``model_path`` None = the bundled all-MiniLM-L6-v2."""

    name = "top-layers"
    default_lr = 1e-4  # fewer weights than a full fine-tune, the same AdamW

    def __init__(
        self,
        model_path=None,
        layers: int = 1,
        max_seq_length: int | None = None,
        device: str | None = None,
        threads: int | None = None,
        encode_batch_size: int = 64,
    ):
        from eci_core.models.st_encoder import bundled_minilm_path

        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise ValueError(f"layers={layers!r}: must be an integer >= 1 (e.g. 1: train the top layer only)")
        from eci_core.models.base import BUNDLED_ENCODER_NAME

        self.model_path = str(model_path or bundled_minilm_path())
        # what results record as the encoder: a portable name, never this machine's path
        self.encoder = SimpleNamespace(
            name=BUNDLED_ENCODER_NAME if model_path is None else Path(str(model_path)).name
        )
        self.layers = layers
        self.max_seq_length = max_seq_length
        self.device = device or detect_device()
        self.threads = threads
        self.encode_batch_size = encode_batch_size
        self._model = None
        self._states: dict[str, tuple] = {}

    # ------------------------------------------------------------------ the frozen part
    def _load(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            m = SentenceTransformer(
                self.model_path, device=self.device, trust_remote_code=False, local_files_only=True
            )
            if self.max_seq_length is not None:
                m.max_seq_length = self.max_seq_length
            mods = list(m)
            auto = getattr(mods[0], "auto_model", None)
            layer_list = getattr(getattr(auto, "encoder", None), "layer", None)
            pooling = mods[1] if len(mods) > 1 else None
            mode = getattr(pooling, "pooling_mode", None) or getattr(
                getattr(pooling, "config", None), "pooling_mode", None
            )
            if (
                layer_list is None
                or (mode is not None and mode != "mean")
                or (mode is None and not getattr(pooling, "pooling_mode_mean_tokens", False))
            ):
                raise ValueError(
                    f"trainer='top-layers': {self.model_path} is not a BERT-style encoder with mean pooling; "
                    "use --trainer finetune for this model"
                )
            if any((getattr(m, "prompts", None) or {}).values()):
                raise ValueError(
                    f"trainer='top-layers': {self.model_path} adds prompts to its inputs; "
                    "use --trainer finetune for this model"
                )
            if self.layers > len(layer_list):
                raise ValueError(f"layers={self.layers}: the model has {len(layer_list)} transformer layers")
            m.eval()
            self._model = m
        return self._model

    def _frozen(self, texts: list[str], which: str) -> None:
        """Hidden states entering the top layers, per distinct text not yet cached."""
        import torch

        m = self._load()
        auto = list(m)[0].auto_model
        todo = [t for t in dict.fromkeys(texts) if (which, t) not in self._states]
        prep = getattr(m, "preprocess", None) or m.tokenize
        with torch.no_grad():
            for s in range(0, len(todo), self.encode_batch_size):
                chunk = todo[s : s + self.encode_batch_size]
                f = prep(chunk)
                ids = f["input_ids"].to(self.device)
                mask = f["attention_mask"].to(self.device)
                kw = {"token_type_ids": f["token_type_ids"].to(self.device)} if "token_type_ids" in f else {}
                out = auto(input_ids=ids, attention_mask=mask, output_hidden_states=True, **kw)
                h = out.hidden_states[-(self.layers + 1)]
                for i, t in enumerate(chunk):
                    n = int(mask[i].sum())
                    self._states[(which, t)] = h[i, :n].detach().clone()

    def setup(self, collection, eval_passages, cache=None, progress=None) -> None:
        self.collection = collection
        self.eval_passages = np.asarray(eval_passages, dtype=np.int64)
        self.cache = cache

    # ------------------------------------------------------------------ the trained part
    def _forward(self, top, texts: list[str], which: str):
        """Embeddings (len(texts), d) of ``texts`` through the modules ``top`` (trained copies
        of the top layers), mean pooling and L2 normalisation."""
        import torch

        states = [self._states[(which, t)] for t in texts]
        lengths = torch.tensor([s.shape[0] for s in states], device=self.device)
        h = torch.nn.utils.rnn.pad_sequence(states, batch_first=True)
        keep = torch.arange(h.shape[1], device=self.device)[None, :] < lengths[:, None]
        additive = (~keep)[:, None, None, :].to(h.dtype) * torch.finfo(h.dtype).min
        for layer in top:
            out = layer(h, attention_mask=additive)
            h = out[0] if isinstance(out, tuple) else out
        w = keep.to(h.dtype)[:, :, None]
        pooled = (h * w).sum(dim=1) / w.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def _encode(self, top, texts: list[str], which: str) -> np.ndarray:
        import torch

        self._frozen(texts, which)
        uniq, inv = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
        out = []
        with torch.no_grad():
            for s in range(0, len(uniq), 256):
                out.append(self._forward(top, list(uniq[s : s + 256]), which).cpu().numpy())
        m = self._load()
        d = (getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension)()
        emb = np.concatenate(out, axis=0) if out else np.zeros((0, d), np.float32)
        return np.asarray(emb[inv], dtype=np.float32)

    def run(self, batches, seed, lr, test_queries, progress=None):
        import torch

        coll = self.collection
        q_texts = [coll.query_texts[int(q)] for q in test_queries]
        p_texts = [coll.passage_texts[int(p)] for p in self.eval_passages]
        threads = torch.get_num_threads()
        if self.device == "cpu" and self.threads:
            torch.set_num_threads(self.threads)
        try:
            auto = list(self._load())[0].auto_model
            top = torch.nn.ModuleList(
                [copy.deepcopy(layer) for layer in auto.encoder.layer[-self.layers :]]
            ).to(self.device)
            if batches is not None:
                self._train(top, batches, seed, lr, progress)
            top.eval()
            return self._encode(top, q_texts, "query"), self._encode(top, p_texts, "passage")
        finally:
            torch.set_num_threads(threads)

    def _train(self, top, batches, seed, lr, progress) -> None:
        import torch

        coll = self.collection
        torch.manual_seed(int(seed))
        top.train()
        opt = torch.optim.AdamW(top.parameters(), lr=lr)
        for i, b in enumerate(batches):
            a_t = [coll.query_texts[int(q)] for q in b.anchors]
            p_t = [coll.passage_texts[int(p)] for p in b.positives]
            n_t = [] if b.negatives is None else [coll.passage_texts[int(p)] for p in b.negatives.reshape(-1)]
            self._frozen(a_t, "query")
            self._frozen(p_t + n_t, "passage")
            a = self._forward(top, a_t, "query")
            p = self._forward(top, p_t, "passage")
            n = (
                None
                if b.negatives is None
                else self._forward(top, n_t, "passage").reshape(*b.negatives.shape, -1)
            )
            loss = mnrl_loss(a, p, n)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if progress:
                progress("Training the top layer(s)", i + 1, len(batches))
