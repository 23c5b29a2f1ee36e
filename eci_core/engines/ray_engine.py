"""The Ray engine: encoding and per-query scoring as Ray Data ``map_batches`` jobs.

Optional: ``pip install "eci-explorer[ray]"`` (``ray[data]``). ``eci score --engine ray
[--ray-address ADDR]`` or ``eci_core.engines.score(..., engine="ray")``.

What runs where:

* **Encoding.** The texts the embedding cache does not hold (each unique text once, as in the
  local engine) go through ``map_batches`` with an actor class, :class:`_EncodeActor`: the
  encoder is loaded once per actor (``load_encoder(name, device)``), one actor per GPU with
  ``num_gpus=1`` when the cluster has GPUs and the encoder runs on torch, else CPU actors
  (:func:`actor_resources`; ``--device cpu`` / ``mps`` keep the actors off the GPUs). Inside a
  GPU actor Ray makes only its GPU visible, so the model runs on ``cuda:0`` whatever GPU the
  driver named (:func:`actor_device`). Vectors come back to the driver, which stores them in
  the cache.
* **Scoring.** All sources become one dataset with one row per (source, query): ``(source, query
  row, negative rows, positive rows)``. :class:`_ScoreActor` (which fetches the embedding matrices and the
  lexicon from Ray's object store once per actor) scores every query of a batch with
  :func:`eci_core.scoring.arrays.score_arrays`: all per-query metrics are computed inside the batch,
  because a row holds all of its query's negatives (no global group-by). A row's output holds its
  per-pair values as list columns.
* **Cross-encoder** (``ce_margin`` and the ``cross_encoder`` flag, when one is given). After the
  scoring job, the driver collects every source's pairs (q, p*) and (q, n) and hands them to
  ``score_collection``'s ``cross`` in one call, which (as in the local engine) keeps each unique
  (query, passage) pair once and looks it up in the embedding cache. The misses go through
  ``map_batches`` with :class:`_CrossActor` (:class:`RayCrossEncoder`): the cross-encoder is
  loaded once per actor, one GPU per actor when the cluster has GPUs and the model runs on torch
  (a sentence-transformers CrossEncoder folder), else CPU actors with one onnxruntime thread each
  (the bundled ONNX model is CPU-only). Scores come back to the driver and go into the cache.
  ``ce_margin = ce(q, p*) − ce(q, n)`` and the flags are then computed per pair (vectorised, no
  group-by) with :func:`eci_core.metrics.eci.flags`, as ``score_arrays`` does.
* **Gathering.** The driver concatenates the batches, restores query order and builds the same
  tables, per-source summary, bootstrap intervals and ``beats`` as the local engine
  (:func:`eci_core.scoring.score_collection` with this engine's ``score_source``).

The local engine's numbers and these are equal (tested on the sample, with the bundled
cross-encoder on a few queries).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

#: Queries per scoring batch (one Ray Data row per query).
SCORE_BATCH = 4096
#: Texts per encoding batch.
ENCODE_BATCH = 256
#: (query, passage) pairs per cross-encoder batch.
CROSS_BATCH = 64


def _require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise ValueError(
            "--engine ray needs Ray Data: pip install \"eci-explorer[ray]\" (or pip install \"ray[data]\")"
        ) from err
    return ray


def init_ray(address: str | None = None, num_cpus: int | None = None):
    """Joins the Ray cluster at ``address`` (``"auto"``, ``"ray://host:10001"``), or starts a
    local one (dashboard off) when ``address`` is None; reuses a running connection."""
    ray = _require_ray()
    if not ray.is_initialized():
        kwargs = dict(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        if address:
            ray.init(address=address, log_to_driver=False, ignore_reinit_error=True)
        else:
            ray.init(num_cpus=num_cpus, **kwargs)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
    return ray


def _n_gpus(ray) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


_DEVICES_HELP = "use 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a comma-separated list"


def requested_devices(device: str | Sequence[str] | None) -> tuple[str, int | None]:
    """What a ``--device`` value asks of a Ray cluster: ``("auto", None)``, ``("cpu", None)``,
    ``("mps", None)``, or ``("cuda", k)`` with ``k`` the number of CUDA devices named
    (``"cuda:1"`` → 1, ``"cuda:0,cuda:2"`` → 2; ``"cuda"`` → None: every GPU). Device numbers are
    this machine's and mean nothing on a cluster, so only their count is kept. Raises
    ``ValueError`` naming the value for an unknown device or a mix of kinds."""
    import re

    if device is None or (isinstance(device, str) and device.strip().lower() in ("", "auto")):
        return "auto", None
    items = (
        [d.strip().lower() for d in device.split(",")]
        if isinstance(device, str)
        else [str(d).strip().lower() for d in device]
    )
    items = [d for d in items if d]
    if not items:
        raise ValueError(f"device={device!r}: {_DEVICES_HELP}")
    for d in items:
        if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", d):
            raise ValueError(f"device={d!r}: {_DEVICES_HELP}")
    kinds = {d.split(":")[0] for d in items}
    if len(kinds) > 1:
        raise ValueError(
            f"device={device!r}: on Ray name one kind of device (cpu, mps, or CUDA GPUs), not a mix"
        )
    kind = kinds.pop()
    if kind != "cuda":
        return kind, None
    return "cuda", (None if "cuda" in items else len(set(items)))


def actor_resources(
    device: str | Sequence[str] | None,
    n_gpus: int,
    n_cpus: int,
    concurrency: int | None = None,
    *,
    torch_model: bool = True,
    max_cpu_actors: int | None = None,
) -> tuple[bool, dict]:
    """``(gpu, map_batches resources)`` of the model actors for ``device`` on a cluster with
    ``n_gpus`` GPUs and ``n_cpus`` CPUs.

    * One GPU per actor (``num_gpus=1``) when ``device`` is ``auto`` and the cluster has a GPU,
      or names CUDA devices; ``concurrency`` actors, default one per GPU (``"cuda:1"`` or
      ``"cuda:0,cuda:2"``: as many actors as devices named, at most the cluster's GPUs).
    * Else one CPU per actor (``num_cpus=1``), ``concurrency`` actors, default one per CPU (at
      most ``max_cpu_actors``): ``device="cpu"`` or ``"mps"``, no GPU in the cluster, or a model
      that does not run on torch (``torch_model=False``: an ONNX or hashing model, CPU-only).

    Raises ``ValueError`` when ``device`` names CUDA devices and the cluster has no GPU (for a
    torch model)."""
    kind, k = requested_devices(device)
    gpu = torch_model and n_gpus > 0 and kind in ("auto", "cuda")
    if torch_model and kind == "cuda" and n_gpus <= 0:
        raise ValueError(f"device={device!r}: the Ray cluster has no GPU; use --device cpu or auto")
    if gpu:
        return True, dict(num_gpus=1, concurrency=concurrency or (min(k, n_gpus) if k else n_gpus))
    cpus = max(1, int(n_cpus))
    return False, dict(
        num_cpus=1, concurrency=concurrency or (min(max_cpu_actors, cpus) if max_cpu_actors else cpus)
    )


def actor_device(
    device: str | Sequence[str] | None, gpu: bool, visible: str | None = None, gpu_ids: Sequence | None = None
) -> str:
    """The torch device a model actor uses, inside the actor: ``"cpu"`` (``"mps"`` when asked
    for) in a CPU actor; in a GPU actor the GPU Ray assigned it. Ray sets
    ``CUDA_VISIBLE_DEVICES`` (``visible``) to that GPU, so it is ``cuda:0`` in the actor whatever
    device number the driver named; with ``RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES`` every GPU
    stays visible and it is ``cuda:<ray.get_gpu_ids()[0]>`` (``gpu_ids``)."""
    if not gpu:
        return "mps" if requested_devices(device)[0] == "mps" else "cpu"
    if visible:
        return "cuda:0"
    if gpu_ids:
        return f"cuda:{int(float(gpu_ids[0]))}"
    return "cuda:0"


def _device_here(device, gpu: bool) -> str:
    """:func:`actor_device` with this Ray worker's environment."""
    visible, ids = os.environ.get("CUDA_VISIBLE_DEVICES"), None
    if gpu and not visible:
        import ray

        ids = ray.get_gpu_ids()
    return actor_device(device, gpu, visible, ids)


# ----------------------------------------------------------------------------- encoding


class _EncodeActor:
    """Ray Data actor: loads the encoder once, then encodes batches of ``text`` rows."""

    def __init__(self, spec, device: str, kind: str, gpu: bool = False):
        from eci_core.models.registry import load_encoder

        if isinstance(spec, str) or spec is None:
            self.encoder = load_encoder(spec, device=_device_here(device, gpu))
        else:
            self.encoder = spec
        self.kind = kind

    def __call__(self, batch):
        import pyarrow as pa

        texts = batch.column("text").to_pylist()
        fn = self.encoder.encode_queries if self.kind == "query" else self.encoder.encode_passages
        vecs = np.asarray(fn(texts), dtype=np.float32)
        flat = pa.array(vecs.reshape(-1))
        return pa.table(
            {"i": batch.column("i"), "vec": pa.FixedSizeListArray.from_arrays(flat, vecs.shape[1])}
        )


class RayEncoder:
    """An encoder whose ``encode_queries`` / ``encode_passages`` run on Ray (see module docstring).

    ``spec`` is what :func:`eci_core.models.registry.load_encoder` takes (a name or a folder every worker
    can read) or a picklable encoder object (e.g. :class:`~eci_core.models.hashing.HashingEncoder`).
    ``name``, ``fingerprint`` and ``dim`` are the local encoder's, so the embedding cache is shared
    with the local engine.
    """

    def __init__(
        self, spec, device: str = "auto", batch_size: int = ENCODE_BATCH, concurrency: int | None = None
    ):
        from eci_core.models.registry import load_encoder

        requested_devices(device)  # ValueError now, not in an actor
        self.spec = spec
        self.device = device
        local = load_encoder(spec, device="cpu") if isinstance(spec, str) or spec is None else spec
        self.name = local.name
        self.fingerprint = local.fingerprint
        self._local = local
        self.batch_size = int(batch_size)
        self.concurrency = concurrency
        self.embed_chunk = 1 << 20  # embed() hands Ray whole jobs, not small batches

    @property
    def dim(self) -> int:
        return int(self._local.dim)

    def resources(self, n_gpus: int, n_cpus: int) -> tuple[bool, dict]:
        """:func:`actor_resources` of this encoder's actors: GPUs only for a sentence-transformers
        model (the ONNX and hashing encoders are CPU-only), at most 4 CPU actors."""
        from eci_core.models.st_encoder import SentenceTransformerEncoder

        return actor_resources(
            self.device,
            n_gpus,
            n_cpus,
            self.concurrency,
            torch_model=isinstance(self._local, SentenceTransformerEncoder),
            max_cpu_actors=4,
        )

    def _run(self, texts: Sequence[str], kind: str) -> np.ndarray:
        import pyarrow as pa

        ray = init_ray()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        gpu, kw = self.resources(_n_gpus(ray), int(ray.cluster_resources().get("CPU", 1)))
        n_actors = kw["concurrency"]
        n_blocks = max(1, min(n_actors, -(-len(texts) // self.batch_size)))
        ds = ray.data.from_arrow(
            pa.table({"i": np.arange(len(texts), dtype=np.int64), "text": texts}),
            override_num_blocks=n_blocks,
        )
        kw["concurrency"] = min(n_actors, n_blocks)
        spec = self.spec if isinstance(self.spec, str) or self.spec is None else self._local
        out = ds.map_batches(
            _EncodeActor,
            fn_constructor_kwargs={"spec": spec, "device": self.device, "kind": kind, "gpu": gpu},
            batch_size=self.batch_size,
            batch_format="pyarrow",
            **kw,
        )
        tables = ray.get(out.to_arrow_refs())
        vecs = np.empty((len(texts), self.dim), dtype=np.float32)
        for t in tables:
            if t.num_rows:
                col = t.column("vec").combine_chunks()
                vecs[t.column("i").to_numpy()] = col.flatten().to_numpy().reshape(t.num_rows, -1)
        return vecs

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._run(texts, "query")

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._run(texts, "passage")


# ----------------------------------------------------------------------------- cross-encoder


def _cross_spec(model):
    """What a :class:`_CrossActor` builds its model from: ``(class, kwargs)`` for the product's
    cross-encoders (rebuilt in the actor from their folder; a torch model's ``device`` is set in
    the actor by :func:`actor_device`), else the object itself (it must pickle)."""
    from eci_core.models.onnx import OnnxCrossEncoder
    from eci_core.models.st_encoder import SentenceTransformersCrossEncoder

    if isinstance(model, OnnxCrossEncoder):  # onnxruntime on CPU: one thread per 1-CPU actor
        return OnnxCrossEncoder, dict(
            model_dir=str(model.model_dir),
            name=model.name,
            batch_size=model.batch_size,
            max_length=model.max_length,
            threads=1,
        )
    if isinstance(model, SentenceTransformersCrossEncoder):
        return SentenceTransformersCrossEncoder, dict(
            model_path=str(model.path),
            name=model.name,
            batch_size=model.batch_size,
            max_length=model.max_length,
            device="cpu",
        )
    return None, model


class _CrossActor:
    """Ray Data actor: builds the cross-encoder once (a torch model on :func:`actor_device`), then
    scores batches of ``(query, passage)`` rows (``logits[:, 0]``, float32, as ``predict`` returns them)."""

    def __init__(self, cls, spec, device: str = "auto", gpu: bool = False):
        if cls is not None and "device" in spec:
            spec = dict(spec, device=_device_here(device, gpu))
        self.model = cls(**spec) if cls is not None else spec

    def __call__(self, batch):
        import pyarrow as pa

        pairs = list(zip(batch.column("query").to_pylist(), batch.column("passage").to_pylist()))
        scores = np.asarray(self.model.predict(pairs), dtype=np.float32).reshape(len(pairs), -1)[:, 0]
        return pa.table({"i": batch.column("i"), "score": scores})


class RayCrossEncoder:
    """A cross-encoder whose ``predict`` runs on Ray (see the module docstring).

    ``model`` is what :func:`eci_core.models.registry.load_cross_encoder` takes (``"bundled"``, a
    folder every worker can read) or a cross-encoder object (the product's are rebuilt in each
    actor from their folder; any other must pickle). ``name`` and ``fingerprint`` are the local
    model's, so cached scores are shared with the local engine. ``predict_chunk`` makes
    :func:`eci_core.models.encoding.cross_scores` hand over whole jobs (one Ray Data job, one model
    load per actor, for up to that many uncached pairs). ``n_scored``: pairs sent to Ray so far.
    ``device="cpu"`` keeps a torch cross-encoder off the cluster's GPUs (with no GPU in the
    cluster it runs on CPU actors, or on ``"mps"`` when asked for).
    """

    def __init__(
        self, model, device: str = "auto", batch_size: int = CROSS_BATCH, concurrency: int | None = None
    ):
        from eci_core.models.registry import load_cross_encoder

        local = load_cross_encoder(model) if model is None or isinstance(model, (str, os.PathLike)) else model
        if local is None:
            raise ValueError(
                "RayCrossEncoder('none'): no cross-encoder to run; pass cross_encoder=None instead"
            )
        requested_devices(device)  # ValueError now, not in an actor
        self._local = local
        self.name = getattr(local, "name", type(local).__name__)
        self.fingerprint = local.fingerprint
        self.device = device
        self.batch_size = int(batch_size)
        self.concurrency = concurrency
        self.predict_chunk = 1 << 20
        self.n_scored = 0

    def resources(self, n_gpus: int, n_cpus: int) -> tuple[bool, dict]:
        """:func:`actor_resources` of this model's actors: GPUs only for a sentence-transformers
        CrossEncoder (the bundled ONNX model is CPU-only), else one actor per CPU."""
        from eci_core.models.st_encoder import SentenceTransformersCrossEncoder

        return actor_resources(
            self.device,
            n_gpus,
            n_cpus,
            self.concurrency,
            torch_model=isinstance(self._local, SentenceTransformersCrossEncoder),
        )

    def predict(self, pairs) -> np.ndarray:
        import pyarrow as pa

        from eci_core.models.base import as_pairs

        pairs = as_pairs(pairs)
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        ray = init_ray()
        gpu, kw = self.resources(_n_gpus(ray), int(ray.cluster_resources().get("CPU", 1)))
        n_blocks = max(1, min(kw["concurrency"], -(-len(pairs) // self.batch_size)))
        kw["concurrency"] = min(kw["concurrency"], n_blocks)
        q, p = zip(*pairs)
        ds = ray.data.from_arrow(
            pa.table({"i": np.arange(len(pairs), dtype=np.int64), "query": list(q), "passage": list(p)}),
            override_num_blocks=n_blocks,
        )
        cls, spec = _cross_spec(self._local)
        out = ds.map_batches(
            _CrossActor,
            fn_constructor_kwargs={"cls": cls, "spec": spec, "device": self.device, "gpu": gpu},
            batch_size=self.batch_size,
            batch_format="pyarrow",
            **kw,
        )
        scores = np.full(len(pairs), np.nan, dtype=np.float32)
        for t in ray.get(out.to_arrow_refs()):
            if t.num_rows:
                scores[t.column("i").to_numpy()] = t.column("score").to_numpy()
        self.n_scored += len(pairs)
        return scores

    def __repr__(self) -> str:
        return f"RayCrossEncoder({self._local!r})"


# ----------------------------------------------------------------------------- scoring

_PAIR_FLOATS = ("s_qn", "s_qp", "margin", "s_pn", "lex_overlap", "ce_margin")
_PAIR_FLAGS = ("unsafe", "near_duplicate", "cross_encoder", "percpos", "flagged")


class _ScoreActor:
    """Ray Data actor: fetches the embedding matrices and lexicon once, then scores batches of
    query rows ``(src, q, neg: list, pos: list)`` with :func:`eci_core.scoring.arrays.score_arrays`
    (rows of one source together; every query's metrics inside the batch)."""

    def __init__(self, refs, config, with_sem: bool):
        import ray

        self.q_emb, self.p_emb, self.lexicon = ray.get(refs[0]), ray.get(refs[1]), ray.get(refs[2])
        self.config = config
        self.with_sem = with_sem

    def _one(self, q, negs, poss, rows):
        import pyarrow as pa

        from eci_core.scoring.arrays import score_arrays

        order = rows[np.argsort(q[rows], kind="stable")]
        qs = q[order]
        n_off, p_off = negs.offsets.to_numpy(), poss.offsets.to_numpy()
        n_val, p_val = negs.values.to_numpy(), poss.values.to_numpy()
        counts = n_off[order + 1] - n_off[order]
        pcounts = p_off[order + 1] - p_off[order]
        n_idx = np.concatenate([n_val[n_off[i] : n_off[i + 1]] for i in order] + [np.zeros(0, np.int64)])
        pos_p = np.concatenate([p_val[p_off[i] : p_off[i + 1]] for i in order] + [np.zeros(0, np.int64)])
        sc = score_arrays(
            self.q_emb,
            self.p_emb,
            np.repeat(qs, counts),
            n_idx,
            np.repeat(qs, pcounts),
            pos_p,
            self.config,
            queries=qs,
            lexicon=self.lexicon,
            with_sem=self.with_sem,
            n_threads=1,
        )
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))

        def lst(values) -> pa.ListArray:
            return pa.ListArray.from_arrays(offsets, pa.array(values))

        cols = {"q": qs, "pstar": sc.pstar, "s_qp_query": sc.s_qp_query, "eci_sem": sc.eci_sem}
        for k, v in sc.metrics.items():
            cols[f"m_{k}"] = np.asarray(v)
        table = pa.table(cols)
        for k in _PAIR_FLOATS:
            table = table.append_column(k, lst(getattr(sc, k)))
        for k in _PAIR_FLAGS:
            table = table.append_column(k, lst(np.asarray(sc.flags[k], dtype=bool)))
        return table.append_column(
            "flag_reasons", lst(np.asarray(sc.flags["flag_reasons"], dtype=object).astype(str))
        )

    def __call__(self, batch):
        import pyarrow as pa

        src = batch.column("src").to_numpy()
        q = batch.column("q").to_numpy()
        negs = batch.column("neg").combine_chunks()
        poss = batch.column("pos").combine_chunks()
        out = []
        for code in np.unique(src):
            t = self._one(q, negs, poss, np.flatnonzero(src == code))
            out.append(t.add_column(0, "src", pa.array(np.full(t.num_rows, code, dtype=np.int64))))
        return pa.concat_tables(out)


class RaySourceScorer:
    """``score_source`` for :func:`eci_core.scoring.score_collection`: scores sources as one Ray
    Data job over their queries (:meth:`score_many`, every source at once) and returns for each
    the same :class:`~eci_core.scoring.arrays.ArrayScores` as :func:`~eci_core.scoring.arrays.score_arrays`
    (timings aside). Called for one source it scores that source alone."""

    def __init__(self, batch_size: int = SCORE_BATCH, concurrency: int | None = None):
        self.batch_size = int(batch_size)
        self.concurrency = concurrency

    @staticmethod
    def _put(ray, q_emb, p_emb, lexicon):
        if not isinstance(p_emb, np.ndarray):  # e.g. a normalising view of a user's memory map
            p_emb = p_emb[np.arange(p_emb.shape[0])]
        return [ray.put(np.asarray(q_emb)), ray.put(np.asarray(p_emb)), ray.put(lexicon)]

    def __call__(
        self, q_emb, p_emb, q_idx, n_idx, pos_q, pos_p, config, *, queries, lexicon, cross, with_sem
    ):
        job = dict(q_idx=q_idx, n_idx=n_idx, pos_q=pos_q, pos_p=pos_p, queries=queries)
        return self.score_many(
            q_emb, p_emb, {"source": job}, config, lexicon=lexicon, cross=cross, with_sem=with_sem
        )["source"]

    def score_many(self, q_emb, p_emb, jobs: dict, config, *, lexicon, cross, with_sem) -> dict:
        """``{name: ArrayScores}`` for ``jobs = {name: dict(q_idx, n_idx, pos_q, pos_p, queries)}``
        (the arguments :func:`~eci_core.scoring.arrays.score_arrays` takes per source)."""
        import pyarrow as pa

        from eci_core.scoring.arrays import positives_for

        ray = init_ray()
        names = list(jobs)
        parts, prepared = [], {}
        for code, name in enumerate(names):
            j = jobs[name]
            queries = np.asarray(j["queries"], dtype=np.int64)
            q_idx = np.asarray(j["q_idx"], dtype=np.int64)
            n_idx = np.asarray(j["n_idx"], dtype=np.int64)
            counts = np.zeros(queries.shape[0], dtype=np.int64)
            if q_idx.shape[0]:
                u, c = np.unique(q_idx, return_counts=True)
                counts[np.searchsorted(queries, u)] = c
            _, pp, pcounts = positives_for(queries, j["pos_q"], j["pos_p"])  # raises as score_arrays would
            as_list = lambda off, vals: pa.ListArray.from_arrays(  # noqa: E731
                pa.array(np.concatenate([[0], np.cumsum(off)]).astype(np.int32)),
                pa.array(vals, type=pa.int64()),
            )
            parts.append(
                pa.table(
                    {
                        "src": np.full(queries.shape[0], code, dtype=np.int64),
                        "q": queries,
                        "neg": as_list(counts, n_idx),
                        "pos": as_list(pcounts, pp),
                    }
                )
            )
            prepared[name] = (queries, q_idx, n_idx)
        rows = pa.concat_tables(parts) if parts else None
        tables = []
        if rows is not None and rows.num_rows:
            cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
            n_blocks = max(1, min(cpus, -(-rows.num_rows // self.batch_size)))
            ds = ray.data.from_arrow(rows, override_num_blocks=n_blocks)
            out = ds.map_batches(
                _ScoreActor,
                fn_constructor_kwargs={
                    "refs": self._put(ray, q_emb, p_emb, lexicon),
                    "config": config,
                    "with_sem": with_sem,
                },
                batch_size=self.batch_size,
                batch_format="pyarrow",
                num_cpus=1,
                concurrency=self.concurrency or min(cpus, n_blocks),
            )
            tables = [t for t in ray.get(out.to_arrow_refs()) if t.num_rows]
        whole = pa.concat_tables(tables) if tables else None
        result = {}
        for code, name in enumerate(names):
            queries, q_idx, n_idx = prepared[name]
            t = None
            if whole is not None:
                t = whole.filter(pa.array(whole.column("src").to_numpy() == code))
            result[name] = self._assemble(
                t, queries, q_idx, n_idx, q_emb, p_emb, jobs[name], config, lexicon, with_sem
            )
        if cross is not None:
            self._add_cross(result, cross, config)
        return result

    @staticmethod
    def _add_cross(result: dict, cross, config) -> None:
        """``ce_margin`` and the flags of every source from one call of ``cross`` over all their
        (q, p*) and (q, n) pairs (it keeps each unique pair once): ``ce_margin = ce(q, p*) −
        ce(q, n)`` per pair, flags by :func:`eci_core.metrics.eci.flags` (the old
        ``near_duplicate`` already holds the exact-copy rule)."""
        from eci_core.metrics import eci as M

        scs = list(result.values())
        qr = np.concatenate([a for sc in scs for a in (sc.queries, sc.q_idx)] + [np.zeros(0, np.int64)])
        pr = np.concatenate([a for sc in scs for a in (sc.pstar, sc.n_idx)] + [np.zeros(0, np.int64)])
        vals = np.asarray(cross(qr, pr), dtype=np.float64) if qr.shape[0] else np.zeros(0)
        at = 0
        for sc in scs:
            nq, npairs = sc.queries.shape[0], sc.q_idx.shape[0]
            ce_pos, ce_neg = vals[at : at + nq], vals[at + nq : at + nq + npairs]
            at += nq + npairs
            counts = np.bincount(np.searchsorted(sc.queries, sc.q_idx), minlength=nq)
            sc.ce_margin = np.repeat(ce_pos, counts) - ce_neg
            sc.flags = M.flags(
                sc.margin,
                sc.s_pn,
                sc.s_qn,
                sc.s_qp,
                exact_duplicate=sc.flags["near_duplicate"],
                ce_margin=sc.ce_margin,
                near_duplicate_threshold=config.near_duplicate_threshold,
                cross_encoder_margin=config.cross_encoder_margin,
                percpos=config.percpos,
            )

    @staticmethod
    def _assemble(t, queries, q_idx, n_idx, q_emb, p_emb, job, config, lexicon, with_sem):
        import pyarrow as pa

        from eci_core.scoring.arrays import ArrayScores, score_arrays

        if t is None or t.num_rows == 0:  # a source without queries: nothing to send to Ray
            return score_arrays(
                q_emb,
                p_emb,
                q_idx,
                n_idx,
                job["pos_q"],
                job["pos_p"],
                config,
                queries=queries,
                lexicon=lexicon,
                with_sem=with_sem,
                n_threads=1,
            )
        t = t.take(pa.array(np.argsort(t.column("q").to_numpy(), kind="stable")))
        if not np.array_equal(t.column("q").to_numpy(), queries):
            raise RuntimeError(
                "the Ray engine lost or repeated queries: its output does not cover the source's queries"
            )

        def flat(name, dtype=None):
            arr = t.column(name).combine_chunks().flatten()
            return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=dtype)

        metrics = {c[2:]: t.column(c).to_numpy() for c in t.column_names if c.startswith("m_")}
        flags = {k: flat(k, bool) for k in _PAIR_FLAGS}
        flags["flag_reasons"] = flat("flag_reasons", object)
        got = {k: flat(k, np.float64) for k in _PAIR_FLOATS}
        sem_capped = (
            int((metrics["K"] > config.eci_sem_max_k).sum()) if with_sem and config.eci_sem_max_k else 0
        )
        return ArrayScores(
            q_idx=q_idx,
            n_idx=n_idx,
            s_qn=got["s_qn"],
            s_qp=got["s_qp"],
            margin=got["margin"],
            s_pn=got["s_pn"],
            lex_overlap=got["lex_overlap"],
            ce_margin=got["ce_margin"],
            flags=flags,
            queries=queries,
            pstar=t.column("pstar").to_numpy(),
            s_qp_query=t.column("s_qp_query").to_numpy(),
            metrics=metrics,
            eci_sem=t.column("eci_sem").to_numpy(),
            n_sem_capped=sem_capped,
        )


def score_ray(
    collection,
    encoder,
    config,
    *,
    ray_address: str | None = None,
    device: str = "auto",
    num_cpus: int | None = None,
    score_batch: int = SCORE_BATCH,
    **kwargs,
):
    """:func:`eci_core.scoring.score_collection` with encoding, scoring and the cross-encoder (when
    ``cross_encoder`` is given: a name, a folder or a model, see :class:`RayCrossEncoder`) on Ray."""
    from eci_core.scoring import score_collection

    init_ray(ray_address, num_cpus=num_cpus)
    ce = kwargs.get("cross_encoder")
    if isinstance(ce, (str, os.PathLike)):
        from eci_core.models.registry import load_cross_encoder

        ce = load_cross_encoder(ce)  # "none" -> None
    if ce is not None and not isinstance(ce, RayCrossEncoder):
        ce = RayCrossEncoder(ce, device=device)
    kwargs["cross_encoder"] = ce
    enc = None
    if kwargs.get("embeddings") is None:
        enc = encoder if isinstance(encoder, RayEncoder) else RayEncoder(encoder, device=device)
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    return score_collection(collection, enc, config, score_source=RaySourceScorer(score_batch), **kwargs)


__all__ = [
    "RayCrossEncoder",
    "RayEncoder",
    "RaySourceScorer",
    "actor_device",
    "actor_resources",
    "init_ray",
    "requested_devices",
    "score_ray",
]
