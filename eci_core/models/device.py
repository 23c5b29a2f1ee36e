"""Where models run: the CPU count (ONNX threads) and the torch devices of ``--device``
(:func:`detect_device`, :func:`resolve_devices`). torch is imported only inside the functions."""

from __future__ import annotations

import os
import re
from typing import Sequence


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` elsewhere), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def detect_device() -> str:
    """The fastest torch device here: ``"cuda"`` when a CUDA GPU is visible, else ``"mps"``
    (Apple silicon), else ``"cpu"``. torch is imported only when this is called."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a requirement
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_devices(device: str | Sequence[str] | None) -> list[str]:
    """The torch devices an encoder runs on, from a ``--device`` value.

    * ``None`` / ``"auto"`` → every visible CUDA GPU (``["cuda:0", "cuda:1", ...]``), else
      ``["mps"]``, else ``["cpu"]``;
    * ``"cuda"`` → every visible CUDA GPU; ``"cpu"``, ``"mps"``, ``"cuda:1"`` → that device;
    * a comma-separated list or a sequence (``"cuda:0,cuda:2"``) → those devices.

    More than one device means sentence-transformers' multi-process encoding (one process per
    device). Raises ``ValueError`` for a device this machine does not have.
    """
    if device is None or (isinstance(device, str) and device.strip().lower() in ("", "auto")):
        device = detect_device()
    items = [d.strip() for d in device.split(",")] if isinstance(device, str) else [str(d) for d in device]
    items = [d for d in items if d]
    if not items:
        raise ValueError(
            f"device={device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a comma-separated list"
        )
    out: list[str] = []
    for d in items:
        low = d.lower()
        if low == "cpu":
            out.append("cpu")
            continue
        if not re.fullmatch(r"cuda(:\d+)?|mps", low):
            raise ValueError(
                f"device={d!r}: use 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a comma-separated list"
            )
        import torch

        if low == "mps":
            mps = getattr(torch.backends, "mps", None)
            if mps is None or not mps.is_available():
                raise ValueError("device='mps': no Apple-silicon GPU here; use --device cpu or auto")
            out.append("mps")
            continue
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"device={d!r}: no CUDA GPU is visible here; use --device cpu or auto")
        if low == "cuda":
            out.extend(f"cuda:{i}" for i in range(n))
        else:
            i = int(low.split(":")[1])
            if i >= n:
                raise ValueError(f"device={d!r}: only {n} CUDA GPU(s) here (cuda:0..cuda:{n - 1})")
            out.append(low)
    return list(dict.fromkeys(out))


__all__ = ["cpu_count", "detect_device", "resolve_devices"]
