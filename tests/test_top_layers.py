"""The ``top-layers`` trainer (eci_core/validation/top_layers.py) on the bundled MiniLM."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from eci_core.validation.trainers import Batch, make_trainer

Q = ["how do I sort a list in python", "what is a decorator?", "why is my loop slow"]
P = [
    "Use sorted() or list.sort() to sort a list; both take a key function and reverse=True.",
    "A decorator is a callable that takes a function and returns a wrapped function.",
    "Python loops are interpreted: move the work into numpy or a comprehension and avoid attribute lookups.",
]


@pytest.fixture(scope="module")
def trainer():
    t = make_trainer("top-layers", None, device="cpu")
    t.setup(SimpleNamespace(query_texts=Q, passage_texts=P), np.arange(len(P)))
    return t


def test_untrained_top_layer_reproduces_the_models_embeddings(trainer):
    """The frozen lower layers' cached output run through the untouched top layer, mean pooling
    and normalisation gives the model's own sentence embeddings. Only the batch padding
    differs (masked keys get weight exp(-3.4e38) = 0 exactly), which changes the summation order
    of the matmuls; float32 rounding of unit vectors through two layers stays below 1e-6
    (observed 1.5e-8)."""
    from eci_core.models.encoding import embed
    from eci_core.models.registry import load_encoder

    q, p = trainer.run(None, 0, 1e-4, np.arange(len(Q)))
    enc = load_encoder(None)
    np.testing.assert_allclose(q, np.asarray(embed(enc, Q, "query")), atol=1e-6)
    np.testing.assert_allclose(p, np.asarray(embed(enc, P, "passage")), atol=1e-6)


def test_training_moves_the_embeddings_towards_the_positives(trainer):
    """A few steps on (query, its passage, another passage as negative) raise every query's
    similarity to its own passage relative to the others; same seed, same numbers."""
    q0, p0 = trainer.run(None, 0, 1e-3, np.arange(3))
    b = Batch(np.arange(3), np.arange(3), np.array([[1], [2], [0]]))
    q1, p1 = trainer.run([b] * 5, 0, 1e-3, np.arange(3))

    def gap(q, p):  # own-passage similarity minus the mean of the others
        s = q @ p.T
        return np.mean(np.diag(s) - (s.sum(axis=1) - np.diag(s)) / 2)

    assert gap(q1, p1) > gap(q0, p0) + 0.01
    q2, p2 = trainer.run([b] * 5, 0, 1e-3, np.arange(3))
    np.testing.assert_array_equal(p1, p2)


def test_refuses_what_it_cannot_train():
    with pytest.raises(ValueError, match="layers=0"):
        make_trainer("top-layers", None, layers=0)
    t = make_trainer("top-layers", None, layers=7, device="cpu")
    t.setup(SimpleNamespace(query_texts=Q, passage_texts=P), np.arange(3))
    with pytest.raises(ValueError, match="6 transformer layers"):
        t.run(None, 0, 1e-4, np.arange(3))


def test_results_record_a_portable_encoder_name(trainer):
    """A saved validation names the model, never the path it has on this machine."""
    from eci_core.models.base import BUNDLED_ENCODER_NAME

    assert trainer.encoder.name == BUNDLED_ENCODER_NAME
