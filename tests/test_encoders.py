"""Encoders, cross-encoders and the on-disk embedding cache (``eci_core/models/``)."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import eci_core  # noqa: F401  (sets the offline environment first)
from eci_core.models.base import EncoderCallCounter, pair_key, text_key
from eci_core.models.cache import EmbeddingCache
from eci_core.models.encoding import cross_scores, embed, export_cross_scores, export_embeddings
from eci_core.models.fingerprint import folder_digest
from eci_core.models.hashing import HashingEncoder
from eci_core.models.onnx import OnnxCrossEncoder
from eci_core.models.registry import load_cross_encoder, load_encoder
from eci_core.models.st_encoder import SentenceTransformerEncoder

TEXTS = [
    "How do I reverse a list in Python?",
    "Use list.reverse() to reverse a list in place.",
    "Paris is the capital of France.",
    "the cat sat on the mat",
]


def shards(root: Path) -> list[Path]:
    """The cache's files (Arrow IPC) and shipped / older-version shards (``np.savez``)."""
    return sorted([*root.rglob("*.arrow"), *root.rglob("*.npz")])


def arrow_vecs_type(path: Path):
    """Arrow type of the vector components of a cache file."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as f:
        return pa.ipc.open_file(f).schema.field("vec").type.value_type


# ------------------------------------------------------------------------------------------
# HashingEncoder
# ------------------------------------------------------------------------------------------


def test_hashing_single_token_matches_hand_computation():
    enc = HashingEncoder(dim=64)
    v = enc.encode_queries(["Hello"])[0]
    h = int.from_bytes(hashlib.blake2b(b"hello", digest_size=8).digest(), "little")
    expected = np.zeros(64, np.float32)
    expected[h % 64] = 1.0 if h >> 63 else -1.0
    np.testing.assert_array_equal(v, expected)


def test_hashing_counts_and_normalises():
    enc = HashingEncoder(dim=512)
    # "a a b": a counted twice; with no collision v = (2 s_a e_a + s_b e_b) / sqrt(5)
    ha, hb = (int.from_bytes(hashlib.blake2b(t, digest_size=8).digest(), "little") for t in (b"a", b"b"))
    assert ha % 512 != hb % 512
    v = enc.encode_passages(["A a, b!"])[0]
    sa, sb = (1.0 if ha >> 63 else -1.0), (1.0 if hb >> 63 else -1.0)
    assert v[ha % 512] == pytest.approx(2 * sa / np.sqrt(5), abs=1e-6)
    assert v[hb % 512] == pytest.approx(sb / np.sqrt(5), abs=1e-6)
    assert np.count_nonzero(v) == 2


def test_hashing_deterministic_normalised_and_sensible():
    a = HashingEncoder().encode_passages(TEXTS + ["", "!!!"])
    b = HashingEncoder().encode_queries(TEXTS + ["", "!!!"])
    assert a.dtype == np.float32 and a.shape == (6, 256)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(a[4], a[5])  # texts without tokens share one unit vector
    # case and punctuation do not matter; word overlap raises similarity
    c = HashingEncoder().encode_queries(["The CAT sat, on the mat!", "stock markets fell sharply"])
    assert float(c[0] @ a[3]) == pytest.approx(1.0, abs=1e-6)
    assert float(a[0] @ a[1]) > float(a[0] @ a[2])


def test_hashing_parameters_and_counter():
    with pytest.raises(ValueError, match="dim"):
        HashingEncoder(dim=1)
    e = HashingEncoder(dim=32)
    assert e.fingerprint != HashingEncoder(dim=64).fingerprint
    assert e.fingerprint == HashingEncoder(dim=32).fingerprint
    e.encode_queries(["a", "b"])
    assert e.n_encoded == 2
    with pytest.raises(TypeError, match="list"):
        e.encode_queries("a single string")


# ------------------------------------------------------------------------------------------
# load_encoder / load_cross_encoder
# ------------------------------------------------------------------------------------------


def test_load_encoder_names():
    assert isinstance(load_encoder("hashing"), HashingEncoder)
    assert load_encoder("hashing:64").dim == 64
    for name in (None, "minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        enc = load_encoder(name)
        assert isinstance(enc, SentenceTransformerEncoder)
        assert enc.name == "all-MiniLM-L6-v2 (bundled)"
        assert enc._model is None  # lazy: nothing loaded yet
    h = HashingEncoder()
    assert load_encoder(h) is h


def test_load_encoder_errors(tmp_path):
    with pytest.raises(ValueError) as err:
        load_encoder("bert-base-uncased")
    msg = str(err.value)
    assert "offline" in msg and "local folder" in msg and "'minilm'" in msg and "'hashing'" in msg
    with pytest.raises(ValueError, match="huggingface-cli download intfloat/e5-small-v2"):
        load_encoder("intfloat/e5-small-v2")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        load_encoder(str(tmp_path / "notes.txt"))
    with pytest.raises(ValueError, match="not a sentence-transformers model folder"):
        load_encoder(str(tmp_path))


def test_load_cross_encoder_names(tmp_path):
    assert load_cross_encoder("none") is None
    for name in (None, "bundled", "ms-marco-MiniLM-L-12-v2"):
        ce = load_cross_encoder(name)
        assert isinstance(ce, OnnxCrossEncoder) and ce._session is None
    with pytest.raises(ValueError, match="offline.*'none'"):
        load_cross_encoder("BAAI/bge-reranker-base")
    with pytest.raises(ValueError, match="neither a CrossEncoder folder"):
        load_cross_encoder(str(tmp_path))


def test_st_fingerprint_tracks_weights_not_mtimes(tmp_path):
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 8}')
    (model / "model.safetensors").write_bytes(b"\x01" * 5000)
    (model / "README.md").write_text("docs")
    fp = SentenceTransformerEncoder(model).fingerprint
    assert fp == SentenceTransformerEncoder(model).fingerprint  # stable
    assert fp.startswith("st-my-model-")
    os.utime(model / "model.safetensors", (1, 1))
    (model / "README.md").write_text("other docs")
    assert SentenceTransformerEncoder(model).fingerprint == fp  # mtime / docs do not matter
    (model / "model.safetensors").write_bytes(b"\x01" * 4999 + b"\x02")  # same size, new weights
    fp2 = SentenceTransformerEncoder(model).fingerprint
    assert fp2 != fp
    assert SentenceTransformerEncoder(model, max_seq_length=128).fingerprint != fp2
    (model / "config_sentence_transformers.json").write_text('{"prompts": {"query": "query: "}}')
    assert SentenceTransformerEncoder(model).fingerprint != fp2
    assert folder_digest(model) == folder_digest(model)


# ------------------------------------------------------------------------------------------
# embed + EmbeddingCache
# ------------------------------------------------------------------------------------------


def test_second_embed_encodes_nothing_and_survives_new_cache(tmp_path):
    enc = EncoderCallCounter(HashingEncoder())
    cache = EmbeddingCache(tmp_path)
    first = embed(enc, TEXTS, "passage", cache=cache)
    assert enc.n_passages == 4
    again = embed(enc, TEXTS, "passage", cache=cache)
    assert enc.n_passages == 4 and enc.n_calls == 1
    np.testing.assert_array_equal(first, again)
    fresh = embed(enc, TEXTS, "passage", cache=EmbeddingCache(tmp_path))
    assert enc.n_encoded == 4
    np.testing.assert_array_equal(first, fresh)
    np.testing.assert_array_equal(first, HashingEncoder().encode_passages(TEXTS))
    # the other kind is cached separately
    embed(enc, TEXTS[:2], "query", cache=cache)
    assert enc.n_queries == 2
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave nothing behind


def test_fully_cached_embed_never_asks_the_encoder_for_its_device(tmp_path):
    """A cache hit for every text must not pick a device (that imports torch: ~2 s of the
    sample's cold start); the batch size is asked for only when something is encoded."""

    class DeviceProbe(HashingEncoder):
        asked = 0

        @property
        def embed_chunk(self) -> int:
            DeviceProbe.asked += 1
            return 2

    enc = DeviceProbe()
    cache = EmbeddingCache(tmp_path)
    first = embed(enc, TEXTS, "passage", cache=cache)
    assert DeviceProbe.asked == 1  # misses: asked once
    again = embed(enc, TEXTS, "passage", cache=EmbeddingCache(tmp_path))
    assert DeviceProbe.asked == 1  # all cached: not asked
    np.testing.assert_array_equal(first, again)
    with pytest.raises(ValueError, match="batch_size=0"):
        embed(enc, TEXTS, "passage", cache=cache, batch_size=0)


def test_embed_dedupes_and_keeps_input_order(tmp_path):
    enc = EncoderCallCounter(HashingEncoder())
    cache = EmbeddingCache(tmp_path)
    embed(enc, ["a", "b"], "query", cache=cache)
    calls = []
    out = embed(
        enc,
        ["c", "b", "a", "c", "d"],
        "query",
        cache=cache,
        progress=lambda *a: calls.append(a),
        batch_size=1,
    )
    assert enc.n_queries == 4  # a, b, then only c and d
    np.testing.assert_array_equal(out, HashingEncoder().encode_queries(["c", "b", "a", "c", "d"]))
    assert calls == [("encoding queries", 0, 2), ("encoding queries", 1, 2), ("encoding queries", 2, 2)]
    # no cache at all: still dedupes
    plain = EncoderCallCounter(HashingEncoder())
    out2 = embed(plain, ["x", "x", "y"], "passage")
    assert plain.n_passages == 2 and np.array_equal(out2[0], out2[1])
    assert embed(plain, [], "passage").shape == (0, 256)
    with pytest.raises(ValueError, match="kind='document'"):
        embed(plain, ["x"], "document")


class Interrupted(Exception):
    pass


def test_interrupted_embed_keeps_finished_batches(tmp_path):
    class Flaky(HashingEncoder):
        calls = 0

        def encode_passages(self, texts):
            Flaky.calls += 1
            if Flaky.calls == 3:
                raise Interrupted("stopped by the user")
            return super().encode_passages(texts)

    texts = [f"t{i}" for i in range(5)]
    with pytest.raises(Interrupted):
        embed(Flaky(), texts, "passage", cache=EmbeddingCache(tmp_path), batch_size=1)
    counter = EncoderCallCounter(HashingEncoder())
    out = embed(counter, texts, "passage", cache=EmbeddingCache(tmp_path))
    assert counter.n_passages == 3  # the two finished batches were stored
    np.testing.assert_array_equal(out, HashingEncoder().encode_passages(texts))


def test_readonly_dir_export(tmp_path):
    enc = HashingEncoder()
    build = EmbeddingCache(tmp_path / "build")
    shipped = tmp_path / "sample" / "embeddings"
    path = export_embeddings(enc, TEXTS, "passage", shipped, cache=build)
    assert path == shipped / enc.fingerprint / "passage" / "passage.npz"
    with np.load(path, allow_pickle=False) as z:
        assert z["vecs"].dtype == np.float16 and z["keys"].dtype == np.dtype("S40")
        assert sorted(z["keys"].tolist()) == sorted(text_key(t).encode() for t in TEXTS)
    before = shards(shipped)
    counter = EncoderCallCounter(enc)
    user = EmbeddingCache(tmp_path / "user", readonly_dirs=[shipped])
    got = embed(counter, TEXTS + ["a new text"], "passage", cache=user)
    assert counter.n_passages == 1  # only the text the shipped cache lacks
    np.testing.assert_allclose(got[:4], enc.encode_passages(TEXTS), atol=2e-3)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    assert shards(shipped) == before  # read-only dirs are never written
    assert len(shards(tmp_path / "user")) == 1
    with pytest.raises(KeyError, match="1 of 1 texts are not in the cache"):
        user.export(enc.fingerprint, "passage", ["never embedded"], tmp_path / "x")


def test_stale_fingerprint_ignored_silently(tmp_path):
    old, new = HashingEncoder(dim=64), HashingEncoder(dim=32)
    cache = EmbeddingCache(tmp_path)
    embed(old, TEXTS, "passage", cache=cache)
    (src,) = shards(tmp_path / old.fingerprint)
    # a shard of another model placed (e.g. copied by hand) in the new model's folder
    dest = cache.shard_dir(new.fingerprint, "passage")
    dest.mkdir(parents=True)
    dest.joinpath(src.name).write_bytes(src.read_bytes())
    counter = EncoderCallCounter(new)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = embed(counter, TEXTS, "passage", cache=EmbeddingCache(tmp_path))
    assert counter.n_passages == 4 and out.shape == (4, 32)
    np.testing.assert_array_equal(out, new.encode_passages(TEXTS))


def test_corrupt_shard_warned_and_recomputed(tmp_path):
    enc = HashingEncoder()
    embed(enc, TEXTS, "passage", cache=EmbeddingCache(tmp_path))
    (shard,) = shards(tmp_path)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])  # truncated by a crash / full disk
    (shard.parent / "zz-garbage.npz").write_bytes(b"not a zip file at all")
    counter = EncoderCallCounter(enc)
    with pytest.warns(RuntimeWarning, match="unreadable embedding-cache shard"):
        out = embed(counter, TEXTS, "passage", cache=EmbeddingCache(tmp_path))
    assert counter.n_passages == 4
    np.testing.assert_array_equal(out, enc.encode_passages(TEXTS))
    assert len(list(tmp_path.rglob("*.corrupt"))) == 2  # moved aside: not reported again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embed(counter, TEXTS, "passage", cache=EmbeddingCache(tmp_path))
    assert counter.n_passages == 4


def test_float16_storage_returns_normalised_float32(tmp_path):
    enc = HashingEncoder(dim=300)
    texts = [f"document number {i} about topic {i % 7}" for i in range(50)]
    exact = enc.encode_passages(texts)
    embed(enc, texts, "passage", cache=EmbeddingCache(tmp_path, dtype="float16"))
    (shard,) = shards(tmp_path)
    assert shard.suffix == ".arrow" and str(arrow_vecs_type(shard)) == "halffloat"
    counter = EncoderCallCounter(enc)
    got = embed(counter, texts, "passage", cache=EmbeddingCache(tmp_path))
    assert counter.n_encoded == 0
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    import rounding  # float16 storage, renormalised: |Δx_i| <= ~2^-10 (derived in tests/rounding.py)

    np.testing.assert_allclose(got, exact, rtol=0, atol=rounding.float16_component_bound(300))
    with pytest.raises(ValueError, match="dtype"):
        EmbeddingCache(tmp_path, dtype="int8")


def test_cache_compacts_many_shards(tmp_path):
    enc = HashingEncoder(dim=16)
    cache = EmbeddingCache(tmp_path)
    texts = [f"text {i}" for i in range(40)]
    for t in texts:  # one shard per call
        embed(enc, [t], "query", cache=cache)
    assert len(shards(tmp_path)) <= 16
    counter = EncoderCallCounter(enc)
    out = embed(counter, texts, "query", cache=EmbeddingCache(tmp_path))
    assert counter.n_encoded == 0
    np.testing.assert_array_equal(out, enc.encode_queries(texts))


def _instrument_cache_io(monkeypatch):
    """Counts bytes written / read by the cache's file writer and reader, and folder listings.

    A file is "read" when it is opened (memory-mapped): counted as its whole size, an upper bound
    of what is read from it."""
    from eci_core.models import cache as E

    io = {"written": 0, "writes": 0, "read": 0, "reads": 0, "globs": 0}
    write, read, glob = E._write_arrow_atomic, E.read_arrow_shard, Path.glob

    def counting_write(path, *args):
        write(path, *args)
        io["written"] += path.stat().st_size
        io["writes"] += 1

    def counting_read(path, fingerprint, kind):
        io["read"] += path.stat().st_size
        io["reads"] += 1
        return read(path, fingerprint, kind)

    def counting_glob(self, pattern):
        io["globs"] += 1
        return glob(self, pattern)

    monkeypatch.setattr(E, "_write_arrow_atomic", counting_write)
    monkeypatch.setattr(E, "read_arrow_shard", counting_read)
    monkeypatch.setattr(Path, "glob", counting_glob)
    return io


def test_cache_many_puts_cost_linear_io_and_files(tmp_path, monkeypatch):
    """300 puts of 20 rows with a 32 KiB shard limit: the bytes written and read per put stay
    constant (no whole-cache rewrite; the old 'compact everything past 16 shards' rule wrote
    ~N/16 times the data, so the second half of the puts cost ~3x the first), the folder holds
    O(size / limit) files, puts never list the folder, and everything reads back equal."""
    from eci_core.models import cache as E

    monkeypatch.setattr(E, "_SHARD_BYTES", 32 << 10)
    monkeypatch.setattr(E, "_FANIN", 4)
    io = _instrument_cache_io(monkeypatch)
    rng = np.random.default_rng(0)
    n_puts, chunk, dim = 300, 20, 16
    vecs = rng.standard_normal((n_puts * chunk, dim)).astype(np.float32)
    keys = [text_key(f"synthetic text {i}") for i in range(len(vecs))]
    cache = EmbeddingCache(tmp_path)
    half: dict = {}
    put_bytes = 0
    for p in range(n_puts):
        w = io["written"]
        sl = slice(p * chunk, (p + 1) * chunk)
        assert cache.put("fp", "passage", keys[sl], vecs[sl]) == chunk
        if p == 0:
            put_bytes = io["written"] - w  # one put's own shard
        if p == n_puts // 2 - 1:
            half = dict(io)
    assert io["globs"] <= 2  # only the first put lists the (empty) folder (*.npz and *.arrow)
    first_w, second_w = half["written"], io["written"] - half["written"]
    first_r, second_r = half["read"], io["read"] - half["read"]
    # tiers 4**t bytes from ~1.4 KiB to 32 KiB: each row is rewritten at most ~3 times
    # (each file written is memory-mapped once, counted as read: read == written)
    assert io["written"] <= 5 * n_puts * put_bytes
    assert io["read"] <= 5 * n_puts * put_bytes
    assert second_w <= 1.6 * first_w and second_r <= 1.6 * first_r + 4 * (32 << 10)
    files = shards(tmp_path)
    total = sum(f.stat().st_size for f in files)
    tiers = 5  # sizes from 4**5 to 4**8 = 32 KiB, at most 3 shards each
    assert len(files) <= total // (32 << 10) + 1 + 3 * tiers
    assert len(files) < n_puts // 10
    # same process: through the memory maps, gathered across files, in any order
    order = rng.permutation(len(keys))
    found, got = cache.get("fp", "passage", [keys[i] for i in order])
    assert found.all()
    np.testing.assert_array_equal(got, vecs[order])
    # a new process: from the shards only
    found, got = EmbeddingCache(tmp_path).get("fp", "passage", keys)
    assert found.all()
    np.testing.assert_array_equal(got, vecs)
    assert EmbeddingCache(tmp_path).count("fp", "passage") == len(keys)


def test_cache_keeps_vectors_on_disk_and_reads_them_back(tmp_path, monkeypatch):
    """The cache holds keys only: vectors are read from its files through memory maps (also
    after merges moved them, and when another process merged the files away meanwhile)."""
    from eci_core.models import cache as E

    monkeypatch.setattr(E, "_SHARD_BYTES", 16 << 10)
    monkeypatch.setattr(E, "_FANIN", 3)
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((3000, 16)).astype(np.float32)
    keys = [text_key(f"t{i}") for i in range(3000)]
    a = EmbeddingCache(tmp_path)
    for i in range(0, 1500, 25):
        a.put("fp", "passage", keys[i : i + 25], vecs[i : i + 25])
    table = a._tables[("fp", "passage")]
    live = [s for s in table.sources if s is not None]
    assert len(table) == 1500 and all(name.endswith(".arrow") for name, _, _ in live)
    # views of the memory maps, not copies
    assert all(not v.flags.owndata and not v.flags.writeable for _, _, v in live)
    order = rng.permutation(1500)
    found, got = a.get("fp", "passage", [keys[i] for i in order])
    assert found.all()
    np.testing.assert_array_equal(got, vecs[order])
    # another process maps the files, then `a` merges the files it maps away
    b = EmbeddingCache(tmp_path)
    assert b.count("fp", "passage") == 1500
    for i in range(1500, 3000, 25):
        a.put("fp", "passage", keys[i : i + 25], vecs[i : i + 25])
    found, got = b.get("fp", "passage", keys)
    assert found.all()
    np.testing.assert_array_equal(got, vecs)
    found, got = a.get("fp", "passage", keys[::-1])
    assert found.all()
    np.testing.assert_array_equal(got, vecs[::-1])


def test_cache_put_whose_file_is_merged_away_at_once_keeps_its_vectors(tmp_path, monkeypatch):
    """Another process may merge (and delete) a file as soon as it is in the folder, before this
    one maps it: the put then keeps the vectors in memory instead of failing."""
    from eci_core.models import cache as E

    rng = np.random.default_rng(5)
    vecs = rng.standard_normal((30, 8)).astype(np.float32)
    keys = [text_key(f"m{i}") for i in range(30)]
    read = E.read_arrow_shard

    def gone_once(path, fingerprint, kind):
        monkeypatch.setattr(E, "read_arrow_shard", read)
        path.unlink()
        return read(path, fingerprint, kind)

    cache = EmbeddingCache(tmp_path)
    monkeypatch.setattr(E, "read_arrow_shard", gone_once)
    assert cache.put("fp", "passage", keys, vecs) == 30
    found, got = cache.get("fp", "passage", keys)
    assert found.all()
    np.testing.assert_array_equal(got, vecs)


def test_cache_keys_sharing_their_first_16_hex_digits_are_told_apart(tmp_path):
    """Lookups search a 64-bit prefix of the keys first; keys whose prefixes tie are compared
    whole (else the second of them would read as a miss or as the first one's vector)."""
    same = "0123456789abcdef"
    keys = [same + f"{i:024x}" for i in (7, 3, 11, 5)] + [text_key("other")]
    vecs = np.arange(5 * 4, dtype=np.float32).reshape(5, 4)
    cache = EmbeddingCache(tmp_path)
    cache.put("fp", "ce", keys[:2], vecs[:2])
    cache.put("fp", "ce", keys[2:], vecs[2:])
    for c in (cache, EmbeddingCache(tmp_path)):
        found, got = c.get("fp", "ce", [k.upper() for k in keys[::-1]] + [same + "f" * 24])
        assert found.tolist() == [True] * 5 + [False]
        np.testing.assert_array_equal(got, vecs[::-1])
    with pytest.raises(ValueError, match="40-character sha1 hex"):
        cache.get("fp", "ce", ["g" * 40])


def test_cache_float16_keeps_this_process_vectors_exact(tmp_path):
    """A float16 file rounds the vectors, so with ``dtype="float16"`` the vectors put by this
    process stay in memory (exact); a new process reads the rounded ones."""
    rng = np.random.default_rng(4)
    vecs = rng.standard_normal((40, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    keys = [text_key(str(i)) for i in range(40)]
    cache = EmbeddingCache(tmp_path, dtype="float16")
    cache.put("fp", "query", keys, vecs)
    np.testing.assert_array_equal(cache.get("fp", "query", keys)[1], vecs)
    again = EmbeddingCache(tmp_path, dtype="float16").get("fp", "query", keys)[1]
    import rounding  # float16 storage, renormalised on read (derived in tests/rounding.py)

    np.testing.assert_allclose(again, vecs, rtol=0, atol=rounding.float16_component_bound(8))


def test_cache_lookup_does_not_scan_shards(tmp_path, monkeypatch):
    """A lookup whose keys are all cached reads no file and lists no folder, however many
    shards the cache holds (cost independent of the number of shards)."""
    from eci_core.models import cache as E

    monkeypatch.setattr(E, "_FANIN", 1000)  # no compaction: 200 shards stay on disk
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((200, 8)).astype(np.float32)
    keys = [text_key(str(i)) for i in range(200)]
    cache = EmbeddingCache(tmp_path)
    for i in range(200):
        cache.put("fp", "query", keys[i : i + 1], vecs[i : i + 1])
    assert len(shards(tmp_path)) == 200
    fresh = EmbeddingCache(tmp_path)
    fresh.get("fp", "query", keys[:1])  # loads the folder once
    io = _instrument_cache_io(monkeypatch)
    for i in range(0, 200, 7):
        found, got = fresh.get("fp", "query", keys[i : i + 7])
        assert found.all()
        np.testing.assert_array_equal(got, vecs[i : i + 7])
    assert io == {"written": 0, "writes": 0, "read": 0, "reads": 0, "globs": 0}


def test_cache_written_by_the_old_rule_is_read_and_compacted(tmp_path):
    """A folder left by the previous version (one compacted shard + 16 small ones, same npz
    format) reads back unchanged, and later puts merge its small shards by size tier."""
    from eci_core.models import cache as E

    rng = np.random.default_rng(2)
    vecs = rng.standard_normal((1000, 8)).astype(np.float32)
    keys = E._as_keys([text_key(str(i)) for i in range(1000)])
    folder = EmbeddingCache(tmp_path).shard_dir("fp", "passage")
    parts = [slice(0, 840)] + [slice(840 + 10 * j, 850 + 10 * j) for j in range(16)]
    for j, sl in enumerate(parts):
        E._write_npz_atomic(
            folder / f"{j:020d}-1-abcd0123.npz",
            keys=keys[sl],
            vecs=vecs[sl],
            fingerprint=np.array(b"fp"),
            kind=np.array(b"passage"),
        )
    cache = EmbeddingCache(tmp_path)
    found, got = cache.get("fp", "passage", keys)
    assert found.all()
    np.testing.assert_array_equal(got, vecs)
    # each npz shard was rewritten as an Arrow file and deleted (a cache of an earlier version)
    assert not list(tmp_path.rglob("*.npz")) and len(list(tmp_path.rglob("*.arrow"))) == 17
    cache.put("fp", "passage", [text_key("new")], np.ones((1, 8), np.float32))
    assert len(shards(tmp_path)) < 17  # the 16 small ones (one tier) were merged
    found, got = EmbeddingCache(tmp_path).get("fp", "passage", keys)
    assert found.all()
    np.testing.assert_array_equal(got, vecs)


def test_cache_file_with_non_finite_vectors_is_set_aside_when_read(tmp_path):
    """Vectors are checked when a lookup reads them (not when the file is mapped): a file holding
    NaN is reported once, renamed ``*.corrupt`` and its entries recomputed; other files serve."""
    from eci_core.models import cache as E

    enc = HashingEncoder(dim=8)
    good, bad = ["a b", "c d"], ["e f", "g h"]
    embed(enc, good, "passage", cache=EmbeddingCache(tmp_path))
    poisoned = enc.encode_passages(bad)
    poisoned[1, 3] = np.nan
    folder = EmbeddingCache(tmp_path).shard_dir(enc.fingerprint, "passage")
    keys = E._as_keys([text_key(t) for t in bad])
    E._write_arrow_atomic(folder / "0-nan.arrow", keys, poisoned, enc.fingerprint, "passage")
    counter = EncoderCallCounter(enc)
    with pytest.warns(RuntimeWarning, match="unreadable embedding-cache shard .*NaN"):
        out = embed(counter, good + bad, "passage", cache=EmbeddingCache(tmp_path))
    assert counter.n_passages == 2  # only the two of the poisoned file
    np.testing.assert_array_equal(out, enc.encode_passages(good + bad))
    assert [p.name for p in tmp_path.rglob("*.corrupt")] == ["0-nan.arrow.corrupt"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embed(counter, good + bad, "passage", cache=EmbeddingCache(tmp_path))
    assert counter.n_passages == 2


def test_cache_default_dir_and_unwritable_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ECI_CACHE_DIR", str(tmp_path / "env-cache"))
    assert EmbeddingCache().directory == tmp_path / "env-cache"
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    counter = EncoderCallCounter(HashingEncoder())
    cache = EmbeddingCache(blocker)  # cannot create folders under a file
    with pytest.warns(RuntimeWarning, match="ECI_CACHE_DIR"):
        embed(counter, TEXTS, "passage", cache=cache)
    embed(counter, TEXTS, "passage", cache=cache)  # still cached in memory
    assert counter.n_passages == 4


def test_cache_count_and_clear(tmp_path):
    enc = HashingEncoder()
    cache = EmbeddingCache(tmp_path)
    embed(enc, TEXTS, "passage", cache=cache)
    embed(enc, TEXTS[:1], "query", cache=cache)
    other = tmp_path / "projections" / "umap"
    other.mkdir(parents=True)
    (other / "coords.npz").write_bytes(b"someone else's file")
    assert cache.count(enc.fingerprint, "passage") == 4
    assert cache.clear(enc.fingerprint) == 2
    assert cache.count(enc.fingerprint, "passage") == 0
    assert (other / "coords.npz").exists()
    counter = EncoderCallCounter(enc)
    embed(counter, TEXTS, "passage", cache=cache)
    assert counter.n_passages == 4
    assert cache.clear() == 1 and (other / "coords.npz").exists()


def test_cache_other_process_writes_are_picked_up(tmp_path):
    enc = HashingEncoder()
    a, b = EmbeddingCache(tmp_path), EmbeddingCache(tmp_path)
    embed(enc, ["first"], "passage", cache=a)
    embed(enc, ["first"], "passage", cache=b)  # b has now read the folder
    embed(enc, ["second"], "passage", cache=a)
    counter = EncoderCallCounter(enc)
    embed(counter, ["second"], "passage", cache=b)
    assert counter.n_encoded == 0


class FakeCrossEncoder:
    """Deterministic stand-in: logit = number of query words found in the passage."""

    name = "fake-ce"
    fingerprint = "fake-ce-v1"

    def predict(self, pairs):
        return np.array(
            [sum(w in p.lower().split() for w in q.lower().split()) for q, p in pairs], np.float32
        )


def test_cross_scores_cached(tmp_path):
    ce = EncoderCallCounter(FakeCrossEncoder())
    assert not hasattr(ce, "encode_queries") and hasattr(ce, "predict")
    pairs = [("a b", "c"), ("a", "b c"), ("cat mat", "the cat sat on the mat"), ("a b", "c")]
    assert pair_key("a b", "c") != pair_key("a", "b c")
    seen = []
    got = cross_scores(ce, pairs, cache=EmbeddingCache(tmp_path), progress=lambda *a: seen.append(a))
    np.testing.assert_array_equal(got, [0, 0, 2, 0])
    assert got.dtype == np.float32 and ce.n_pairs == 3
    assert seen[-1] == ("cross-encoding pairs", 3, 3)
    again = cross_scores(ce, pairs[::-1], cache=EmbeddingCache(tmp_path))
    assert ce.n_pairs == 3
    np.testing.assert_array_equal(again, got[::-1])
    assert cross_scores(ce, []).shape == (0,)
    # a shipped cache of cross-encoder scores
    shipped = tmp_path / "shipped"
    path = export_cross_scores(FakeCrossEncoder(), pairs, shipped)
    assert path == shipped / "fake-ce-v1" / "ce" / "ce.npz"
    with np.load(path, allow_pickle=False) as z:
        assert z["vecs"].dtype == np.float32 and z["vecs"].shape == (3, 1)
    fresh = EncoderCallCounter(FakeCrossEncoder())
    got2 = cross_scores(fresh, pairs, cache=EmbeddingCache(tmp_path / "u", readonly_dirs=[shipped]))
    assert fresh.n_pairs == 0
    np.testing.assert_array_equal(got2, got)


# ------------------------------------------------------------------------------------------
# Real bundled models
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    return load_encoder("minilm")


@pytest.mark.slow
def test_bundled_minilm(minilm, tmp_path):
    assert minilm.dim == 384 and minilm._model is None  # dim read from the folder's configs
    q = minilm.encode_queries(["How do I reverse a list in Python?"])
    p = minilm.encode_passages(
        [
            "To reverse a Python list, call list.reverse() or use slicing with [::-1].",
            "The Eiffel Tower is in Paris and was finished in 1889.",
        ]
    )
    assert q.shape == (1, 384) and p.shape == (2, 384) and p.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(np.vstack([q, p]), axis=1), 1.0, atol=1e-5)
    sims = (q @ p.T)[0]
    assert sims[0] > 0.5 > sims[1]
    para = minilm.encode_passages(
        ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell today."]
    )
    assert para[0] @ para[1] > para[0] @ para[2] + 0.3
    counter = EncoderCallCounter(minilm)
    out = embed(
        counter,
        ["A man is playing a guitar.", "Someone plays the guitar."],
        "passage",
        cache=EmbeddingCache(tmp_path),
    )
    np.testing.assert_allclose(out, para[:2], atol=1e-5)
    embed(counter, ["Someone plays the guitar."], "passage", cache=EmbeddingCache(tmp_path))
    assert counter.n_passages == 2
    assert load_encoder().fingerprint == minilm.fingerprint


@pytest.mark.slow
def test_bundled_onnx_cross_encoder():
    ce = load_cross_encoder()
    q = "how do i reverse a list in python"
    pairs = [
        (q, "The Eiffel Tower is in Paris and was finished in 1889."),
        (
            q,
            "To reverse a Python list in place, call list.reverse(); slicing with [::-1] returns "
            "a reversed copy.",
        ),
        ("what is the capital of france", "Paris is the capital and largest city of France."),
        ("what is the capital of france", "How to reverse a list in Python."),
        (q, "word " * 1000),  # longer than 512 tokens: truncated, not an error
    ]
    s = ce.predict(pairs)
    assert s.shape == (5,) and s.dtype == np.float32 and np.isfinite(s).all()
    assert s[1] > s[0] + 5 and s[2] > s[3] + 5
    assert s[1] > 0 > s[0]
    # one pair per run (default): a score does not depend on the other pairs
    alone = np.array([ce.predict([p])[0] for p in pairs[:4]])
    np.testing.assert_allclose(s[:4], alone, atol=1e-5)
    # batched with per-batch padding and length sorting: same order, int8 noise only
    batched = OnnxCrossEncoder(batch_size=32).predict(pairs)
    np.testing.assert_allclose(batched, s, atol=0.3)
    assert ce.fingerprint == OnnxCrossEncoder().fingerprint


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A tiny random BERT saved as a local sentence-transformers model (with E5-style prompts)
    and as a local CrossEncoder, built offline from the bundled MiniLM tokenizer."""
    torch = pytest.importorskip("torch")
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    try:
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    except ImportError:  # older sentence-transformers
        from sentence_transformers.models import Normalize, Pooling, Transformer

    from eci_core.models.st_encoder import bundled_minilm_path

    d = tmp_path_factory.mktemp("tiny")
    tok = AutoTokenizer.from_pretrained(str(bundled_minilm_path()))
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(d / "hf")
    tok.save_pretrained(d / "hf")
    st = SentenceTransformer(
        modules=[Transformer(str(d / "hf")), Pooling(32, "mean"), Normalize()],
        prompts={"query": "query: ", "document": "passage: "},
    )
    st.save(str(d / "bi"))
    cfg.num_labels = 1
    ce = BertForSequenceClassification(cfg).eval()
    ce.save_pretrained(d / "ce")
    tok.save_pretrained(d / "ce")
    return d, st, ce, tok


@pytest.mark.slow
def test_local_sentence_transformers_folder_applies_prompts(tiny_models):
    d, st, _, _ = tiny_models
    enc = load_encoder(str(d / "bi"))
    assert isinstance(enc, SentenceTransformerEncoder) and enc.name == "bi"
    assert enc.dim == 32 and enc._model is None
    q = enc.encode_queries(["hello world", "sorting lists"])
    p = enc.encode_passages(["hello world"])
    ref = st.encode(
        ["query: hello world", "sorting lists", "passage: hello world"],
        normalize_embeddings=True,
        convert_to_numpy=True,
    )
    ref[1] = st.encode(["query: sorting lists"], normalize_embeddings=True)[0]
    np.testing.assert_allclose(q, ref[:2], atol=1e-5)
    np.testing.assert_allclose(p[0], ref[2], atol=1e-5)
    assert np.abs(q[0] - p[0]).max() > 1e-3  # the prompts make query and passage differ
    assert enc.fingerprint != load_encoder("minilm").fingerprint


@pytest.mark.slow
def test_local_cross_encoder_folder_returns_raw_logits(tiny_models):
    import torch

    d, _, ce_model, tok = tiny_models
    ce = load_cross_encoder(str(d / "ce"))
    assert ce.__class__.__name__ == "SentenceTransformersCrossEncoder"
    pairs = [("what is python", "Python is a programming language."), ("a", "b c d")]
    got = ce.predict(pairs)
    batch = tok([q for q, _ in pairs], [p for _, p in pairs], padding=True, return_tensors="pt")
    with torch.no_grad():
        want = ce_model(**batch).logits[:, 0].numpy()
    assert got.dtype == np.float32 and got.shape == (2,)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert ce.fingerprint.startswith("st-ce-ce-")


# ------------------------------------------------------------------------------------------
# Bundled ONNX bge-small-en-v1.5 and devices
# ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bundled_bge_small_cls_pooling_instruction_and_ranking(tmp_path):
    from eci_core.models.onnx import BGE_QUERY_INSTRUCTION, OnnxBgeEncoder

    enc = load_encoder("bge-small")
    assert isinstance(enc, OnnxBgeEncoder) and enc.dim == 384
    assert load_encoder("BAAI/bge-small-en-v1.5").fingerprint == enc.fingerprint
    q = enc.encode_queries(["how do i reverse a list in python", "what is the capital of france"])
    p = enc.encode_passages(
        [
            "To reverse a Python list in place, call list.reverse(); slicing with [::-1] copies.",
            "Paris is the capital and largest city of France.",
            "word " * 1000,  # longer than 512 tokens: truncated, not an error
        ]
    )
    assert q.dtype == np.float32 and p.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(np.vstack([q, p]), axis=1), 1.0, atol=1e-5)
    s = q @ p[:2].T
    assert s[0, 0] > s[0, 1] + 0.2 and s[1, 1] > s[1, 0] + 0.2
    # a query is the passage encoding of instruction + query (the model card's recipe) ...
    np.testing.assert_allclose(
        q[0], enc.encode_passages([BGE_QUERY_INSTRUCTION + "how do i reverse a list in python"])[0], atol=1e-6
    )
    # ... and CLS pooling: the [CLS] row of last_hidden_state, normalised, computed by hand
    enc._load()
    e = enc._tokenizer.encode("Paris is the capital and largest city of France.")
    h = enc._session.run(
        None,
        {
            "input_ids": np.array([e.ids]),
            "attention_mask": np.array([e.attention_mask]),
            "token_type_ids": np.array([e.type_ids]),
        },
    )[0][0, 0]
    np.testing.assert_allclose(p[1], h / np.linalg.norm(h), atol=1e-6)
    # batch 1: a text's vector does not depend on its neighbours (int8 per-tensor scales)
    again = enc.encode_passages(["Paris is the capital and largest city of France."])
    np.testing.assert_array_equal(again[0], p[1])
    assert OnnxBgeEncoder(batch_size=8).fingerprint == enc.fingerprint  # batch size is not part of it


def test_resolve_devices_and_errors(monkeypatch):
    from eci_core.models.device import resolve_devices

    torch = pytest.importorskip("torch")
    assert resolve_devices("cpu") == ["cpu"]
    assert resolve_devices("cpu, cpu") == ["cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert resolve_devices("auto") == ["cuda:0", "cuda:1", "cuda:2"]
    assert resolve_devices("cuda") == ["cuda:0", "cuda:1", "cuda:2"]
    assert resolve_devices("cuda:2,cuda:0") == ["cuda:2", "cuda:0"]
    with pytest.raises(ValueError, match=r"only 3 CUDA GPU\(s\)"):
        resolve_devices("cuda:3")
    with pytest.raises(ValueError, match="device='tpu'"):
        resolve_devices("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ValueError, match="no CUDA GPU is visible"):
        resolve_devices("cuda")
    enc = SentenceTransformerEncoder.bundled(device="cpu")
    assert enc.devices == ["cpu"] and enc.embed_chunk == enc.batch_size and enc._model is None
    multi = SentenceTransformerEncoder.bundled(device=["cpu"], batch_size=32)
    assert multi.embed_chunk == 32
    assert multi.fingerprint == enc.fingerprint  # the device does not change the cache key
