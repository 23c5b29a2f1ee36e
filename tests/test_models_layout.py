"""Layout of ``eci_core/models``: the encoder registry and the package's lazy exports (the layer
rules, private names and module sizes are checked for every package in tests/test_architecture.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import eci_core  # noqa: F401  (sets the offline environment first)
from eci_core.models import registry
from eci_core.models.base import as_pairs
from eci_core.models.hashing import HashingEncoder
from eci_core.models.registry import ENCODERS, ENCODER_OPTIONS, load_encoder

PACKAGE = Path(eci_core.__file__).resolve().parent


class _ReversedHashing(HashingEncoder):
    """A test encoder: the hashing encoder with the vector reversed (another fingerprint)."""

    def __init__(self, dim: int = 256):
        super().__init__(dim)
        self.name = f"reversed hashing (dim {self.dim})"
        self.fingerprint = f"reversed-hashing-v1-dim{self.dim}"

    def _encode(self, texts):
        return super()._encode(texts)[:, ::-1].copy()


def test_a_new_encoder_is_one_registry_entry(monkeypatch):
    """Registering a name (and the pattern of its option) is all load_encoder needs; names are
    case-insensitive and looked up before folders."""
    monkeypatch.setitem(
        ENCODERS, "reversed", lambda option, device: _ReversedHashing(int(option) if option else 256)
    )
    monkeypatch.setitem(ENCODER_OPTIONS, "reversed", r"\d+")
    enc = load_encoder("Reversed")
    assert isinstance(enc, _ReversedHashing) and enc.dim == 256
    enc64 = load_encoder("reversed:64")
    assert enc64.dim == 64
    base = HashingEncoder(64).encode_queries(["a text", "another one"])
    np.testing.assert_array_equal(enc64.encode_queries(["a text", "another one"]), base[:, ::-1])
    with pytest.raises(ValueError, match="unknown encoder 'reversed:x'"):
        load_encoder("reversed:x")  # an option that does not match the pattern is no registered name


def test_registered_names_and_options():
    """The built-in names resolve as before: hashing with and without a dimension, and an
    option that is not a number is an unknown encoder (the offline message)."""
    assert load_encoder("hashing").dim == 256
    assert load_encoder("HASHING:512").dim == 512
    with pytest.raises(ValueError, match="unknown encoder 'hashing:abc'"):
        load_encoder("hashing:abc")
    with pytest.raises(ValueError, match="dim=1"):
        load_encoder("hashing:1")
    assert registry.load_cross_encoder("none") is None
    assert as_pairs([("q", "p")]) == [("q", "p")]


def test_package_exports_are_lazy():
    """``eci_core.models`` exports the public names without importing a model library, and the
    ``embed`` it exports is the function (not the module that holds it)."""
    code = (
        "import sys, eci_core.models as m, eci_core.models.encoding\n"
        "from eci_core.models import embed, load_encoder, EmbeddingCache, open_embeddings\n"
        "assert callable(embed) and embed.__module__ == 'eci_core.models.encoding', embed\n"
        "load_encoder('hashing')\n"
        "print(sorted(k for k in ('torch', 'sentence_transformers', 'onnxruntime') if k in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent
    )
    assert out.stdout.strip() == "[]"
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        import eci_core.models as m

        m.nothing_here  # noqa: B018
