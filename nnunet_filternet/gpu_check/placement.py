"""Tensors a training step puts on the host: each is a host-to-device copy on a GPU, every step.

A constant built on the CPU inside a step (a kernel, a weight, a class index) and then used with device tensors
costs a host-to-device copy per step; a 0-dim CPU tensor is even mixed into device arithmetic silently. Two ways
to see them:

- Without a GPU, :func:`host_tensor_events` runs the step with the trainer on PyTorch's ``meta`` device (shapes,
  no data, no arithmetic) and records, with a ``TorchDispatchMode``, every operator that reads or makes a CPU
  tensor, together with the innermost calling line outside torch. A step that keeps everything on the device shows
  only nnU-Net's own copies: the batch to the device at the start of ``train_step`` and the loss back to the host
  at its end (that device-to-host copy is answered with a zero on the host, as meta tensors hold no data).
  ``meta`` has no autocast; :func:`meta_without_autocast` turns ``torch.autocast(device_type="meta", ...)``, which
  the edge gate enters to compute in float32, into a no-op for the duration.
- On a GPU, :func:`host_to_device_copies` lists the step's ``Memcpy HtoD`` events with ``torch.profiler``.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_THIS_FILE = os.path.abspath(__file__)


@dataclass(frozen=True)
class HostTensorEvent:
    """One operator that read or made a CPU tensor while the step ran on another device.

    Attributes:
        op: the ATen operator, e.g. ``aten._to_copy.default``.
        where: ``file:line function`` of the innermost caller outside torch.
        ours: that caller is in this package (not nnU-Net, not torch).
    """

    op: str
    where: str
    ours: bool


def _caller() -> tuple[str, bool]:
    for frame in reversed(traceback.extract_stack()):
        filename = os.path.abspath(frame.filename)
        if filename.startswith(_TORCH_DIR) or filename == _THIS_FILE:
            continue
        return f"{filename}:{frame.lineno} {frame.name}", filename.startswith(_PACKAGE_DIR)
    return "?", False


class HostTensorRecorder(TorchDispatchMode):
    """Records every operator with a CPU tensor among its inputs or outputs (see the module docstring)."""

    def __init__(self):
        super().__init__()
        self.events: list[HostTensorEvent] = []

    def _record(self, func) -> None:
        where, ours = _caller()
        self.events.append(HostTensorEvent(str(func), where, ours))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._to_copy.default and args[0].is_meta and kwargs.get("device") == torch.device("cpu"):
            self._record(func)  # a device-to-host copy: meta has no data, answer with zeros
            return torch.zeros(args[0].shape, dtype=kwargs.get("dtype") or args[0].dtype)
        out = func(*args, **kwargs)
        tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
        if any(t.device.type == "cpu" for t in tensors):
            self._record(func)
        return out


@contextlib.contextmanager
def meta_without_autocast() -> Iterator[None]:
    """``torch.autocast(device_type="meta", ...)`` as a no-op context for the duration (meta has no autocast)."""
    original = torch.autocast

    def autocast(device_type: str, *args, **kwargs):
        return contextlib.nullcontext() if device_type == "meta" else original(device_type, *args, **kwargs)

    torch.autocast = autocast
    try:
        yield
    finally:
        torch.autocast = original


def host_tensor_events(trainer, batch: dict) -> list[HostTensorEvent]:
    """Run ``trainer.train_step(batch)`` once, the trainer on the ``meta`` device; return the host tensor events.

    Args:
        trainer: an nnU-Net trainer constructed with ``device=torch.device("meta")`` and initialised (with the
            variable ``nnUNet_compile`` false: nnU-Net would otherwise compile on any device but CPU and MPS).
        batch: ``{"data": ..., "target": ...}`` on the CPU, as nnU-Net's data loader delivers it.
    """
    if trainer.device.type != "meta":
        raise ValueError(f"host_tensor_events: expected a trainer on the meta device, found {trainer.device}")
    with meta_without_autocast(), HostTensorRecorder() as recorder:
        trainer.train_step(batch)
    return recorder.events


def host_to_device_copies(step: Callable[[], object]) -> list[str]:
    """The host-to-device copies (CUDA ``Memcpy HtoD``) while ``step()`` runs, by ``torch.profiler``.

    Returns:
        One line per copy: the operator that launched it and the innermost Python frames outside torch
        (``with_stack``), or "no launching operator recorded" where the profiler linked none.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.cuda.is_available()
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    with profile(activities=activities, with_stack=True) as prof:
        step()
        if cuda:
            torch.cuda.synchronize()
    events = prof.events()
    found = []
    for event in events:
        launched = sum("memcpy htod" in kernel.name.lower() for kernel in event.kernels)
        frames = [f for f in event.stack if not os.path.abspath(f.split("(")[0]).startswith(_TORCH_DIR)][:3]
        found += [f"{event.name} at {' < '.join(frames) or '?'}"] * launched
    total = sum(e.device_type == DeviceType.CUDA and "memcpy htod" in e.name.lower() for e in events)
    return found + ["no launching operator recorded"] * max(0, total - len(found))
