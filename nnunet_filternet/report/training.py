"""Training facts of a trainer for Tables II and III: parameters, peak memory, epoch time, learned sigma.

The learned sigma of a fold is read from its checkpoint (the gate's state, exact); the training log, which prints
sigma to 3 decimals, says which folds trained a gate and gives lambda, and sigma only for a fold without a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnunet_filternet.report.checkpoints import checkpoint_parameters, checkpoint_sigma, find_checkpoint
from nnunet_filternet.report.logs import TrainingLog, read_fold_logs
from nnunet_filternet.report.results import TrainerRun


@dataclass
class TrainingSummary:
    """What a trainer's folds logged and saved.

    Attributes:
        trainer: trainer class name.
        parameters: network parameter count from the first fold's checkpoint (else from the log), or None.
        parameters_source: "checkpoint <file>", "log" or None.
        logged_parameters: the count our trainers log, to cross-check (None for stock trainers).
        peak_memory_mib: the largest logged peak memory over folds and epochs, or None.
        memory_source: "cuda max allocated" or "process max RSS" (as logged).
        epoch_times_s: all logged epoch times of all folds.
        sigma_per_fold: fold -> the edge gate's sigma at the end of training (gate trainers only): from the fold's
            checkpoint, else the last logged value.
        sigma_logged_folds: the folds whose sigma comes from the log (no checkpoint), 3 decimals.
        lambda_per_fold: fold -> the last logged lambda.
    """

    trainer: str
    parameters: int | None = None
    parameters_source: str | None = None
    logged_parameters: int | None = None
    peak_memory_mib: float | None = None
    memory_source: str | None = None
    epoch_times_s: list[float] = field(default_factory=list)
    sigma_per_fold: dict[int, float] = field(default_factory=dict)
    sigma_logged_folds: set[int] = field(default_factory=set)
    lambda_per_fold: dict[int, float] = field(default_factory=dict)

    @property
    def epoch_time_mean_s(self) -> float | None:
        return float(np.mean(self.epoch_times_s)) if self.epoch_times_s else None

    @property
    def epoch_time_std_s(self) -> float | None:
        return float(np.std(self.epoch_times_s, ddof=1)) if len(self.epoch_times_s) > 1 else None


def summarise_training(run: TrainerRun) -> TrainingSummary:
    """Read every fold's logs and the first available checkpoint of a trainer run."""
    summary = TrainingSummary(run.trainer)
    folds = {fold.fold: fold.path for fold in run.folds}
    logs: dict[int, TrainingLog] = {fold: read_fold_logs(path) for fold, path in folds.items()}
    for fold, log in logs.items():
        summary.epoch_times_s.extend(log.epoch_times_s)
        if log.peak_memory_mib:
            peak = max(log.peak_memory_mib)
            if summary.peak_memory_mib is None or peak > summary.peak_memory_mib:
                summary.peak_memory_mib, summary.memory_source = peak, log.memory_source
        if log.final_sigma is not None:
            summary.lambda_per_fold[fold] = log.final_lambda
            checkpoint = find_checkpoint(folds[fold])
            if checkpoint is None:
                summary.sigma_per_fold[fold] = log.final_sigma
                summary.sigma_logged_folds.add(fold)
            else:
                summary.sigma_per_fold[fold] = checkpoint_sigma(checkpoint)
        if log.network_parameters is not None and summary.logged_parameters is None:
            summary.logged_parameters = log.network_parameters
    for fold in run.folds:
        checkpoint = find_checkpoint(fold.path)
        if checkpoint is not None:
            summary.parameters = checkpoint_parameters(checkpoint)
            summary.parameters_source = f"{fold.path.name}/{checkpoint.name}"
            break
    if summary.parameters is None and summary.logged_parameters is not None:
        summary.parameters, summary.parameters_source = summary.logged_parameters, "log"
    return summary
