"""The Ray engine's actor plans as pure functions (no Ray, no GPU needed): what each model actor
asks the cluster for under ``--device``, and which torch device it uses inside the actor.

Inside a Ray actor with ``num_gpus=1`` Ray sets ``CUDA_VISIBLE_DEVICES`` to the GPU it assigned,
so torch sees exactly one GPU there, ``cuda:0``, whatever number the driver's ``--device`` named.
The tests drive ``RayEncoder`` / ``RayCrossEncoder`` through a stand-in for ``ray`` that records
the ``map_batches`` request (what a GPU cluster would be asked) and stops there.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import eci_core  # noqa: F401
from eci_core.engines import ray_engine
from eci_core.engines.ray_engine import (
    RayCrossEncoder,
    RayEncoder,
    actor_device,
    actor_resources,
    requested_devices,
)
from eci_core.models.hashing import HashingEncoder
from eci_core.models.onnx import OnnxCrossEncoder
from eci_core.models.st_encoder import (
    SentenceTransformerEncoder,
    SentenceTransformersCrossEncoder,
    bundled_minilm_path,
)


class _Stop(Exception):
    pass


@pytest.fixture()
def fake_cluster(monkeypatch):
    """``init_ray`` returns a stand-in for a cluster of ``gpus`` GPUs and 8 CPUs; ``map_batches``
    records its keyword arguments in ``asked`` and stops the job."""
    asked: dict = {}
    res = {"GPU": 0.0, "CPU": 8.0}

    class DS:
        def map_batches(self, fn, **kw):
            asked.update(kw, fn=fn)
            raise _Stop

    fake = SimpleNamespace(
        cluster_resources=lambda: dict(res),
        data=SimpleNamespace(from_arrow=lambda table, override_num_blocks=1: DS()),
    )
    monkeypatch.setattr(ray_engine, "init_ray", lambda *a, **k: fake)

    def run(model, gpus: int):
        asked.clear()
        res["GPU"] = float(gpus)
        with pytest.raises(_Stop):
            if isinstance(model, RayEncoder):
                model.encode_queries(["a question", "another question"])
            else:
                model.predict([("q", "p"), ("q", "n")])
        return {k: v for k, v in asked.items() if k in ("num_gpus", "num_cpus", "concurrency")}, asked[
            "fn_constructor_kwargs"
        ]

    return run


def test_requested_devices_parse_device_values():
    assert requested_devices(None) == requested_devices("auto") == requested_devices(" ") == ("auto", None)
    assert requested_devices("cpu") == ("cpu", None) and requested_devices("MPS") == ("mps", None)
    assert requested_devices("cuda") == ("cuda", None)
    assert requested_devices("cuda:1") == ("cuda", 1)
    assert requested_devices("cuda:0, cuda:2") == requested_devices(["cuda:0", "cuda:2"]) == ("cuda", 2)
    with pytest.raises(ValueError, match="device='tpu:0': use 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'"):
        requested_devices("tpu:0")
    with pytest.raises(ValueError, match="device='cpu,cuda:0': on Ray name one kind of device"):
        requested_devices("cpu,cuda:0")


def test_actor_resources_respect_device_cpu_and_count_named_gpus():
    # auto: a GPU per actor when the cluster has GPUs, one actor per GPU
    assert actor_resources("auto", 4, 64) == (True, {"num_gpus": 1, "concurrency": 4})
    assert actor_resources("auto", 0, 64, max_cpu_actors=4) == (False, {"num_cpus": 1, "concurrency": 4})
    # --device cpu / mps: CPU actors even on a GPU cluster
    assert actor_resources("cpu", 4, 64) == (False, {"num_cpus": 1, "concurrency": 64})
    assert actor_resources("mps", 4, 2) == (False, {"num_cpus": 1, "concurrency": 2})
    # named CUDA devices: as many GPU actors as devices named (at most the cluster's)
    assert actor_resources("cuda:1", 1, 8) == (True, {"num_gpus": 1, "concurrency": 1})
    assert actor_resources("cuda:0,cuda:1", 4, 8) == (True, {"num_gpus": 1, "concurrency": 2})
    assert actor_resources("cuda:0,cuda:1,cuda:2", 2, 8) == (True, {"num_gpus": 1, "concurrency": 2})
    assert actor_resources("cuda", 3, 8, concurrency=6) == (True, {"num_gpus": 1, "concurrency": 6})
    with pytest.raises(
        ValueError, match="device='cuda:1': the Ray cluster has no GPU; use --device cpu or auto"
    ):
        actor_resources("cuda:1", 0, 8)
    # a CPU-only model (ONNX, hashing) never takes a GPU, and "cuda" is not an error for it
    assert actor_resources("cuda", 0, 8, torch_model=False) == (False, {"num_cpus": 1, "concurrency": 8})
    assert actor_resources("auto", 4, 8, 3, torch_model=False) == (False, {"num_cpus": 1, "concurrency": 3})


def test_actor_device_is_the_actors_visible_gpu():
    # Ray made one GPU visible to the actor: it is cuda:0 there, whatever the driver named
    assert actor_device("cuda:1", True, visible="1") == "cuda:0"
    assert actor_device("auto", True, visible="3", gpu_ids=[3]) == "cuda:0"
    # RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES: every GPU visible, the assigned one by its id
    assert actor_device("cuda:0", True, visible=None, gpu_ids=[2]) == "cuda:2"
    assert actor_device("cuda", True, visible="", gpu_ids=["1"]) == "cuda:1"
    # CPU actors: cpu (mps when asked for), never "auto" (which would pick up an unreserved GPU)
    assert actor_device("auto", False) == actor_device("cpu", False) == actor_device("cuda:1", False) == "cpu"
    assert actor_device("mps", False) == "mps"


def test_ray_encoder_under_device_cpu_asks_for_no_gpu(fake_cluster):
    enc = RayEncoder(
        SentenceTransformerEncoder(bundled_minilm_path(), device="cpu"), device="cpu", batch_size=1
    )
    kw, ctor = fake_cluster(enc, gpus=2)  # 2 texts in batches of 1: 2 blocks, at most 2 actors
    assert kw == {"num_cpus": 1, "concurrency": 2} and ctor["gpu"] is False
    auto = RayEncoder(
        SentenceTransformerEncoder(bundled_minilm_path(), device="cpu"), device="auto", batch_size=1
    )
    kw, ctor = fake_cluster(auto, gpus=2)
    assert kw == {"num_gpus": 1, "concurrency": 2} and ctor["gpu"] is True
    kw, ctor = fake_cluster(
        RayEncoder(HashingEncoder(), device="auto", batch_size=1), gpus=2
    )  # CPU-only model
    assert kw == {"num_cpus": 1, "concurrency": 2} and ctor["gpu"] is False
    one = RayEncoder(
        SentenceTransformerEncoder(bundled_minilm_path(), device="cpu"), device="cuda:1", batch_size=1
    )
    kw, ctor = fake_cluster(one, gpus=1)
    assert kw == {"num_gpus": 1, "concurrency": 1} and ctor["gpu"] is True and ctor["device"] == "cuda:1"
    with pytest.raises(ValueError, match="device='tpu'"):
        RayEncoder(HashingEncoder(), device="tpu")


def test_encode_actor_loads_the_model_on_its_visible_gpu(monkeypatch):
    """`--device cuda:1` reaches a one-GPU actor as cuda:0 (its only visible GPU), not as cuda:1
    (which resolve_devices refuses there); a CPU actor loads on cpu."""
    import eci_core.models.registry as encoders

    seen = []
    monkeypatch.setattr(
        encoders, "load_encoder", lambda spec, device="auto": seen.append(device) or HashingEncoder()
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    ray_engine._EncodeActor("minilm", "cuda:1", "query", gpu=True)
    ray_engine._EncodeActor("minilm", "auto", "query", gpu=False)
    assert seen == ["cuda:0", "cpu"]


def test_cross_encoder_actors_take_a_gpu_only_for_a_torch_model(tmp_path, fake_cluster, monkeypatch):
    """A sentence-transformers CrossEncoder gets one GPU per actor when the cluster has GPUs (built
    on the actor's visible GPU), none under --device cpu; the bundled ONNX model gets one CPU per
    actor and one onnxruntime thread; another model object is shipped as is."""
    (tmp_path / "config.json").write_text("{}")
    st_ce, onnx = SentenceTransformersCrossEncoder(tmp_path, batch_size=16), OnnxCrossEncoder()
    kw, ctor = fake_cluster(RayCrossEncoder(st_ce, device="auto", batch_size=1), gpus=4)
    assert (
        kw == {"num_gpus": 1, "concurrency": 2} and ctor["gpu"] is True
    )  # 2 pairs in batches of 1: 2 actors
    assert ctor["cls"] is SentenceTransformersCrossEncoder and ctor["spec"]["batch_size"] == 16
    kw, ctor = fake_cluster(RayCrossEncoder(st_ce, device="cpu", batch_size=1), gpus=4)
    assert kw == {"num_cpus": 1, "concurrency": 2} and ctor["gpu"] is False
    assert RayCrossEncoder(st_ce, device="cpu").resources(4, 64) == (
        False,
        {"num_cpus": 1, "concurrency": 64},
    )
    assert RayCrossEncoder(onnx, device="auto", concurrency=8).resources(4, 64) == (
        False,
        {"num_cpus": 1, "concurrency": 8},
    )
    kw, ctor = fake_cluster(RayCrossEncoder(onnx), gpus=4)
    assert ctor["gpu"] is False and ctor["cls"] is OnnxCrossEncoder and ctor["spec"]["threads"] == 1
    assert ctor["cls"](**ctor["spec"]).fingerprint == onnx.fingerprint
    # in the actor: the torch model is built on the actor's device
    built = []
    monkeypatch.setattr(
        SentenceTransformersCrossEncoder, "__init__", lambda self, **kw: built.append(kw["device"])
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    ray_engine._CrossActor(
        SentenceTransformersCrossEncoder, {"model_path": "m", "device": "cpu"}, "cuda:3", gpu=True
    )
    ray_engine._CrossActor(
        SentenceTransformersCrossEncoder, {"model_path": "m", "device": "cpu"}, "auto", gpu=False
    )
    assert built == ["cuda:0", "cpu"]
    other = HashingEncoder()
    assert ray_engine._cross_spec(other) == (None, other)
