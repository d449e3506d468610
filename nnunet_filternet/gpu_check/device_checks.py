"""The in-process checks of ``filternet gpu-check``, on a preprocessed dataset: ``python -m`` this module.

For each edge-gate trainer (FilterNet, UNet-F), built by nnU-Net's ``get_trainer_from_args`` and ``initialize``
as ``nnUNetv2_train`` builds it, on a batch from nnU-Net's own data loader:

- ``amp``: the trainer's ``train_step`` in float32 on the CPU (nnU-Net's CPU step) against the same step, same
  weights, on the device: on CUDA nnU-Net's own float16 autocast + GradScaler, on a CPU (dry run) the same step
  under CPU autocast (``amp.cpu_autocast``). Tolerances: ``amp.compare_steps``.
- ``placement``: host-to-device copies of one step with the batch already on the device. CUDA: ``Memcpy HtoD``
  events counted by ``torch.profiler`` in the second step (the first warms up), expected 0. CPU (dry run): the
  step on the ``meta`` device under ``placement.HostTensorRecorder``, expected no host tensor in our code.
- ``compile``: the trainer's network compiled whole (``fullgraph=True``) against eager, one float32 step
  (``compiled.check_compiled``): inductor on CUDA, ``aot_eager`` in the dry run.

The trainers are built uncompiled (``nnUNet_compile=f``): compile and AMP together run in the check's real
trainings; these compare numbers, which needs eager float32 as the reference. Prints one ``PASS``/``FAIL`` line per
check and trainer; exit code 0 when all pass, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import torch

from nnunet_filternet.pipeline.nnunet_runs import variables_set

#: The trainers whose step differs from stock nnU-Net's by our code (the edge gate and its loss).
EDGE_GATE_TRAINERS: tuple[str, ...] = ("nnUNetTrainerFilterNet", "nnUNetTrainerUNetF")


def load_trainer(dataset: str, plans: str, trainer_name: str, device: torch.device, configuration: str = "3d_fullres"):
    """An initialised trainer as ``nnUNetv2_train DATASET CONFIGURATION 0 -tr NAME -p PLANS`` builds it, uncompiled."""
    from nnunetv2.run.run_training import get_trainer_from_args

    with variables_set({"nnUNet_compile": "f"}):
        trainer = get_trainer_from_args(dataset, configuration, 0, trainer_name, plans, device=device)
        trainer.initialize()
    return trainer


def loader_batch(trainer) -> dict:
    """The first training batch of nnU-Net's own data loader for ``trainer`` (augmentation in this process)."""
    with variables_set({"nnUNet_n_proc_DA": "0"}):
        loader, _ = trainer.get_dataloaders()
    return next(loader)


def on_device(batch: dict, device: torch.device) -> dict:
    """``batch`` with data and targets moved to ``device``."""
    target = batch["target"]
    target = [t.to(device) for t in target] if isinstance(target, list) else target.to(device)
    return {"data": batch["data"].to(device), "target": target}


def check_amp(dataset: str, plans: str, trainer_name: str, device: torch.device) -> list[str]:
    """Problems of one mixed-precision step on ``device`` against float32 on the CPU (empty: PASS)."""
    from nnunet_filternet.gpu_check.amp import (
        compare_steps,
        cpu_autocast,
        cpu_autocast_dtype,
        enter_epoch_of_final_lambda,
        record_train_step,
    )

    cpu = torch.device("cpu")
    reference_trainer = load_trainer(dataset, plans, trainer_name, cpu)
    mixed_trainer = load_trainer(dataset, plans, trainer_name, device)
    mixed_trainer.network.load_state_dict(reference_trainer.network.state_dict())
    mixed_trainer.edge_gate.load_state_dict(reference_trainer.edge_gate.state_dict())
    for trainer in (reference_trainer, mixed_trainer):
        enter_epoch_of_final_lambda(trainer)
    batch = loader_batch(reference_trainer)
    reference = record_train_step(reference_trainer, batch)
    amp = cpu_autocast(mixed_trainer, cpu_autocast_dtype()) if device.type == "cpu" else contextlib.nullcontext()
    with amp:
        mixed = record_train_step(mixed_trainer, batch)
    print(f"  {trainer_name} float32 (cpu): {reference}", flush=True)
    print(f"  {trainer_name} mixed ({device.type}): {mixed}", flush=True)
    return compare_steps(reference, mixed)


def check_placement(dataset: str, plans: str, trainer_name: str, device: torch.device) -> list[str]:
    """Host-to-device copies of one training step with the batch on the device (empty: PASS)."""
    from nnunet_filternet.gpu_check.placement import host_tensor_events, host_to_device_copies

    if device.type == "cpu":  # dry run: the step on the meta device, host tensors of our code
        trainer = load_trainer(dataset, plans, trainer_name, torch.device("meta"))
        batch = loader_batch(trainer)
        ours = [e for e in host_tensor_events(trainer, batch) if e.ours]
        return [f"host tensor in our code: {e.op} at {e.where}" for e in ours]
    trainer = load_trainer(dataset, plans, trainer_name, device)
    batch = on_device(loader_batch(trainer), device)
    trainer.train_step(batch)  # warm-up: lazy initialisations (GradScaler's scale, cuDNN) happen here
    copies = host_to_device_copies(lambda: trainer.train_step(batch))
    print(f"  {trainer_name}: {len(copies)} host-to-device copies in one step", flush=True)
    return [f"host-to-device copy in a step with the batch on the device: {c}" for c in copies]


def check_compile(dataset: str, plans: str, trainer_name: str, device: torch.device) -> list[str]:
    """The trainer's network under ``torch.compile`` against eager, one float32 step (empty: PASS).

    CUDA: inductor (Triton kernels), as nnU-Net compiles. CPU (dry run): ``aot_eager``, which checks that the
    network is one graph and that its backward traces, without inductor's minutes of C++ compilation here
    (the test suite runs inductor on the CPU: ``tests/test_compile.py``).
    """
    from nnunet_filternet.gpu_check.compiled import check_compiled

    trainer = load_trainer(dataset, plans, trainer_name, device)
    batch = on_device(loader_batch(trainer), device)
    backend = "inductor" if device.type == "cuda" else "aot_eager"
    return check_compiled(trainer.network.train(), batch["data"], backend=backend)


CHECKS = {"amp": check_amp, "placement": check_placement, "compile": check_compile}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnunet_filternet.gpu_check.device_checks", description=__doc__)
    parser.add_argument("--dataset", required=True, help="nnU-Net dataset name or id (under nnUNet_preprocessed)")
    parser.add_argument("--plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--checks", nargs="+", choices=tuple(CHECKS), default=list(CHECKS))
    parser.add_argument("--trainers", nargs="+", default=list(EDGE_GATE_TRAINERS))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    failed = 0
    for check in args.checks:
        for trainer_name in args.trainers:
            problems = CHECKS[check](args.dataset, args.plans, trainer_name, device)
            failed += bool(problems)
            print(f"{'FAIL' if problems else 'PASS'} {check} {trainer_name}" + "".join(f"\n  - {p}" for p in problems))
            sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
