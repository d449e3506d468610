"""``filternet gpu-check``: everything our GPU path needs, once, on a small phantom, PASS/FAIL per step with timings.

Steps, in one work folder (the demo's layout, :class:`~nnunet_filternet.pipeline.demo.Demo`):

1. ``environment``: torch, CUDA and the GPU, nnU-Net, and nnU-Net finding our trainers;
2. ``bench``: ``filternet bench --device DEVICE --quick``, started at once in the background (it needs no data);
3. ``phantom``, ``convert``, ``plan``, ``budget-trainers``: a small synthetic cohort through ``filternet convert``
   and nnU-Net's own fingerprint, default plans and preprocessing; nnU-Net finding the two trainers' budget
   variants (``training/variants.py``) with the run's ``nnUNet_extTrainer``;
4. in parallel: ``train:<trainer>`` for FilterNet and stock nnU-Net (``nnUNetv2_train`` with nnU-Net's defaults:
   on CUDA ``torch.compile`` and float16 AMP; a short budget, ``<trainer>_<E>epochs_<I>iters_<V>val``) and
   ``device-checks`` (:mod:`~nnunet_filternet.gpu_check.device_checks`: AMP against float32, host-to-device copies);
5. ``logs``: FilterNet's training log holds one ``edge gate: lambda ... sigma ...`` line per epoch, its final
   checkpoint holds a sigma that moved; on CUDA both logs say ``Using torch.compile...`` and both checkpoints
   hold GradScaler state (AMP was on);
6. ``predict``: both models' predictions of the held-out subject's legs (the demo's stage: nnU-Net's own
   validation outputs of the fold), label maps with labels 0..5.

The check is a list of steps (:meth:`GpuCheck.steps`) over the pipeline: the demo's stages, training arguments,
plans identifier and model folders (:class:`~nnunet_filternet.pipeline.demo.Demo`), its nnU-Net environment
(:func:`~nnunet_filternet.pipeline.nnunet_runs.environment`), nnU-Net's trainer search
(:func:`~nnunet_filternet.nnunet_ext.find_trainer`). Which steps passed is kept by the pipeline's
:class:`~nnunet_filternet.pipeline.stages.StageRunner` in ``gpu_check_state.json``: a step that passed is skipped
when the command is run again in the same folder with the same settings; a step whose inputs failed is reported
as SKIP. ``--device cpu`` is the dry run: the same steps with nnU-Net's CPU rules (no compile, no AMP) and the
CPU stand-ins of the device checks.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.gpu_check.jobs import Job, wait_for
from nnunet_filternet.pipeline.presets import DemoPreset
from nnunet_filternet.training.budget import Budget

EDGE_GATE_TRAINER = "nnUNetTrainerFilterNet"
STOCK_TRAINER = "nnUNetTrainer"
#: The trained models: FilterNet against stock nnU-Net.
TRAINERS: tuple[str, ...] = (EDGE_GATE_TRAINER, STOCK_TRAINER)
#: nnU-Net's line when it compiles the network (``nnUNetTrainer.initialize``).
COMPILE_LINE = "Using torch.compile..."


@dataclass(frozen=True)
class CheckSettings:
    """What the check runs.

    Attributes:
        device: ``cuda`` (the check) or ``cpu`` (its dry run).
        subjects: phantom subjects (4 folds: one held out).
        shape, spacing: phantom scan matrix (x, y, z) and spacing (mm).
        plans_preset: None for nnU-Net's own ``nnUNetPlans``; ``tiny`` for a fast CPU dry run.
        budget: training length of both trainers.
        bench_args: arguments after ``filternet bench --device DEVICE``.
        timeout_s: time limit of each background step (training, benchmark, device checks).
        da_workers: nnU-Net's data-augmentation processes per training (``nnUNet_n_proc_DA``).
    """

    device: str = "cuda"
    subjects: int = 4
    shape: tuple[int, int, int] = (256, 256, 16)
    spacing: tuple[float, float, float] = (1.4, 1.4, 7.0)
    plans_preset: str | None = None
    budget: Budget = field(default_factory=lambda: Budget(epochs=2, iterations=10, val_iterations=2))
    bench_args: tuple[str, ...] = ("--quick",)
    timeout_s: float = 420.0
    da_workers: int = 4

    def preset(self) -> DemoPreset:
        return DemoPreset(
            name="gpu-check",
            subjects=self.subjects,
            healthy=1,
            shape=self.shape,
            spacing=self.spacing,
            plans_preset=self.plans_preset,
            folds=(0,),
            budget=self.budget,
            device=self.device,
            trainers=TRAINERS,
        )

    def as_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


@dataclass(frozen=True)
class StepResult:
    """One line of the report: PASS, FAIL or SKIP, the step's wall time and what it found."""

    name: str
    status: str
    seconds: float
    detail: str = ""

    def line(self) -> str:
        text = f"{self.status:4}  {self.name:32} {self.seconds:7.1f} s"
        return f"{text}  {self.detail}" if self.detail else text


class StepFailed(Exception):
    """A step's check did not hold; the message says what was expected and what was found."""


@dataclass(frozen=True)
class Step:
    """One step of the check: run in this process (``run``) or as a background job (``job`` and ``check``).

    Attributes:
        name: the step's name in the report and the state file.
        run: returns what the step found (a line of the report) or raises :class:`StepFailed`.
        job: makes the step's background job; it passes when it exits with 0 and ``check(job)`` holds.
        check: what a finished job must have left behind (raises :class:`StepFailed` otherwise).
        needs: steps that must have passed first (else this one is a SKIP); an in-process step waits for the
            running jobs when it needs one of them.
    """

    name: str
    run: Callable[[], str | None] | None = None
    job: Callable[[], Job] | None = None
    check: Callable[[Job], str] | None = None
    needs: tuple[str, ...] = ()


class GpuCheck:
    """The check in ``workdir`` (see the module docstring); :meth:`run` runs it and returns the results."""

    def __init__(self, workdir: str | Path, settings: CheckSettings):
        from nnunet_filternet.pipeline.demo import Demo
        from nnunet_filternet.pipeline.stages import StageRunner

        self.settings = settings
        self.workdir = Path(workdir).resolve()
        threads = 1 if settings.device == "cpu" else None  # the dry run's processes share the CPU
        self.demo = Demo(self.workdir, settings.preset(), da_workers=settings.da_workers, threads=threads)
        self.logs = self.workdir / "logs"
        self.stages = StageRunner(self.workdir / "gpu_check_state.json", settings.as_dict())
        self.results: list[StepResult] = []
        self._jobs: list[Job] = []

    # ---- recording ------------------------------------------------------------------------------
    def _record(self, result: StepResult) -> StepResult:
        self.results.append(result)
        print(result.line(), flush=True)
        if result.status == "PASS":
            self.stages.mark_done(result.name, result.seconds, result.detail)
        return result

    def _earlier(self, name: str) -> bool:
        if self.stages.done(name):
            earlier = StepResult(name, "PASS", self.stages.seconds(name), self.stages.detail(name))
            self.results.append(earlier)
            print(f"{earlier.line()}  (earlier run)", flush=True)
            return True
        return False

    def ok(self, *names: str) -> bool:
        """Whether every named step passed (now or in an earlier run)."""
        status = {r.name: r.status for r in self.results}
        return all(status.get(n) == "PASS" for n in names)

    def _ready(self, name: str, needs: tuple[str, ...]) -> bool:
        """False (after recording it or a SKIP) when step ``name`` passed before or a step it needs did not pass."""
        if self._earlier(name):
            return False
        if not self.ok(*needs):
            self._record(StepResult(name, "SKIP", 0.0, f"needs {', '.join(needs)}"))
            return False
        return True

    # ---- running steps --------------------------------------------------------------------------
    def step(self, name: str, fn: Callable[[], str | None], needs: tuple[str, ...] = ()) -> None:
        """Run in-process step ``name`` unless it passed before or a step it needs did not pass."""
        if not self._ready(name, needs):
            return
        start = time.perf_counter()
        try:
            detail, status = fn() or "", "PASS"
        except (StepFailed, FilterNetError) as e:
            detail, status = str(e), "FAIL"
        except Exception as e:  # report and go on: one broken step must not hide the others' results
            detail, status = f"{type(e).__name__}: {e}", "FAIL"
        self._record(StepResult(name, status, time.perf_counter() - start, detail))

    def start_job(self, job: Job, needs: tuple[str, ...] = ()) -> Job | None:
        """Start background step ``job`` (None when it passed before or cannot run)."""
        if not self._ready(job.name, needs):
            return None
        print(f"start {job.name}: {' '.join(map(str, job.argv))}", flush=True)
        self._jobs.append(job.start(self.demo.env))
        return job

    def finish_jobs(self, jobs: list[tuple[Job, Callable[[Job], str]]]) -> None:
        """Wait for started jobs; each passes when it exits with 0 and its ``check(job)`` holds."""
        wait_for([job for job, _ in jobs])
        for job, check in jobs:
            if job.timed_out:
                status, detail = "FAIL", f"timed out after {job.timeout_s:.0f} s; log {job.log}:\n{job.tail()}"
            elif job.returncode != 0:
                status, detail = "FAIL", f"exit code {job.returncode}; log {job.log}:\n{job.tail()}"
            else:
                try:
                    status, detail = "PASS", check(job)
                except StepFailed as e:
                    status, detail = "FAIL", f"{e}; log {job.log}"
                except Exception as e:  # as in step(): report it and go on
                    status, detail = "FAIL", f"{type(e).__name__}: {e}; log {job.log}"
            self._record(StepResult(job.name, status, job.seconds, detail))

    # ---- the steps ------------------------------------------------------------------------------
    def steps(self) -> list[Step]:
        """The check, in order (see the module docstring)."""
        trainings = tuple(f"train:{t}" for t in TRAINERS)
        return [
            Step("environment", run=self.environment),
            Step("bench", job=self.bench_job, check=self.check_bench, needs=("environment",)),
            Step("phantom", run=self.demo.make_cohort, needs=("environment",)),
            Step("convert", run=self.demo.convert, needs=("phantom",)),
            Step("plan", run=self.demo.plan_and_preprocess, needs=("convert",)),
            Step("budget-trainers", run=self.budget_trainers, needs=("plan",)),
            *(
                Step(
                    f"train:{t}",
                    job=partial(self.train_job, t),
                    check=partial(self.check_training, t),
                    needs=("budget-trainers",),
                )
                for t in TRAINERS
            ),
            Step("device-checks", job=self.device_checks_job, check=self.check_device_checks, needs=("plan",)),
            Step("logs", run=self.logs_step, needs=trainings),
            Step("predict", run=self.predict_step, needs=trainings),
        ]

    def environment(self) -> str:
        import platform
        from importlib.metadata import version

        import torch

        from nnunet_filternet.nnunet_ext import find_trainer
        from nnunet_filternet.pipeline import nnunet_runs

        parts = [f"python {platform.python_version()}", f"torch {torch.__version__}"]
        if self.settings.device == "cuda":
            if not torch.cuda.is_available():
                raise StepFailed("expected a CUDA GPU visible to torch, found none")
            parts += [f"CUDA {torch.version.cuda}", torch.cuda.get_device_name(0)]
        parts.append(f"nnunetv2 {version('nnunetv2')}")
        with nnunet_runs.environment_set(self.demo.env):
            found = find_trainer(EDGE_GATE_TRAINER)
        if found is None:
            raise StepFailed(
                f"expected nnU-Net to find {EDGE_GATE_TRAINER} (nnUNet_extTrainer={self.demo.env['nnUNet_extTrainer']})"
            )
        parts.append(f"nnU-Net finds {found.__module__}.{found.__name__}")
        return ", ".join(parts)

    def bench_job(self) -> Job:
        argv = [sys.executable, "-m", "nnunet_filternet", "bench", "--device", self.settings.device]
        argv += list(self.settings.bench_args)
        return Job("bench", argv, self.logs / "bench.log", self.settings.timeout_s, stdout=self.workdir / "bench.md")

    @staticmethod
    def check_bench(job: Job) -> str:
        report = job.stdout.read_text(encoding="utf-8")
        targets = [line for line in report.splitlines() if line.startswith(("- PASS", "- FAIL", "- n/a"))]
        if "Targets:" not in report or not targets:
            raise StepFailed(f"expected the benchmark's Markdown report with its targets in {job.stdout}")
        counts = {s: sum(line.startswith(f"- {s}") for line in targets) for s in ("PASS", "FAIL", "n/a")}
        return (
            f"report {job.stdout}; targets PASS {counts['PASS']}, FAIL {counts['FAIL']}, n/a {counts['n/a']} "
            "(times measured beside the trainings: for the record run the benchmark alone)"
        )

    def train_job(self, trainer: str) -> Job:
        from nnunet_filternet.pipeline import nnunet_runs

        args = self.demo.train_args(trainer, 0, device=self.settings.device)
        argv = [*nnunet_runs.command("nnUNetv2_train"), *map(str, args)]
        return Job(f"train:{trainer}", argv, self.logs / f"train_{trainer}.log", self.settings.timeout_s)

    def check_training(self, trainer: str, _job: Job | None = None) -> str:
        fold_dir = self.demo.model_dir(trainer) / "fold_0"
        if not (fold_dir / "checkpoint_final.pth").is_file():
            raise StepFailed(f"expected {fold_dir / 'checkpoint_final.pth'}, found none")
        return f"{self.settings.budget.epochs} epochs x {self.settings.budget.iterations} iterations, {fold_dir}"

    def device_checks_job(self) -> Job:
        argv = [sys.executable, "-m", "nnunet_filternet.gpu_check.device_checks", "--dataset", self.demo.dataset]
        argv += ["--plans", self.demo.plans, "--device", self.settings.device]
        return Job("device-checks", argv, self.logs / "device_checks.log", self.settings.timeout_s)

    @staticmethod
    def check_device_checks(job: Job) -> str:
        lines = [line for line in job.log.read_text(encoding="utf-8").splitlines() if line.startswith("PASS ")]
        if not lines:
            raise StepFailed("expected PASS lines of the device checks, found none")
        return "; ".join(line[5:] for line in lines)

    def logs_step(self) -> str:
        fold_dirs = {t: self.demo.model_dir(t) / "fold_0" for t in TRAINERS}
        return check_training_records(fold_dirs, EDGE_GATE_TRAINER, self.settings.device, self.settings.budget.epochs)

    def predict_step(self) -> str:
        import numpy as np
        import SimpleITK as sitk

        self.demo.predict()
        counted = []
        for trainer in TRAINERS:
            cases = self.demo.held_out_cases(0)
            for case in cases:
                path = self.demo.trainer_out(trainer) / "legs" / f"{case}.nii.gz"
                if not path.is_file():
                    raise StepFailed(f"{trainer}: expected the prediction {path}, found none")
                labels = set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))).tolist())
                if not labels <= set(range(6)):
                    raise StepFailed(f"{path}: expected labels 0..5, found {sorted(labels)}")
            counted.append(f"{trainer} {len(cases)} legs")
        return ", ".join(counted)

    def budget_trainers(self) -> str:
        """nnU-Net finds both budget variants with the run's variables (a PYTHONPATH install has no start-up hook)."""
        self.demo.check_trainers()  # with the demo's environment, which the jobs run with
        return ", ".join(self.demo.trained_name(t) for t in TRAINERS) + f" ({self.settings.budget.describe()})"

    # ---- all ------------------------------------------------------------------------------------
    def run(self) -> list[StepResult]:
        """Every step of :meth:`steps`; background jobs still running on an error are ended."""
        try:
            return self._run(self.steps())
        finally:
            for job in self._jobs:
                if job.running:
                    job.kill()
                    job.poll()

    def _run(self, steps: list[Step]) -> list[StepResult]:
        """In order: a job step starts its job; an in-process step first waits for the running jobs it needs."""
        running: list[tuple[Job, Callable[[Job], str]]] = []
        for s in steps:
            if s.job is not None:
                job = self.start_job(s.job(), needs=s.needs)
                if job is not None:
                    running.append((job, s.check))
                continue
            if any(job.name in s.needs for job, _ in running):
                self.finish_jobs(running)
                running = []
            self.step(s.name, s.run, needs=s.needs)
        self.finish_jobs(running)
        return self.results


def check_training_records(fold_dirs: dict[str, Path], edge_gate_trainer: str, device: str, epochs: int) -> str:
    """What the trainings left behind: gate lines and a sigma that moved; on CUDA, compile and AMP on.

    Args:
        fold_dirs: trainer name -> its ``fold_0`` results folder (logs, ``checkpoint_final.pth``).
        edge_gate_trainer: the trainer among them with the edge gate.
        device: the training device, ``cuda`` or ``cpu``.
        epochs: the number of epochs trained.

    Raises:
        StepFailed: naming the trainer, what was expected and the file where it was not found.
    """
    import torch

    from nnunet_filternet.edge.schedule import edge_lambda
    from nnunet_filternet.report.logs import read_fold_logs
    from nnunet_filternet.training.edge_gate_owner import gate_state_from_checkpoint, sigma_from_gate_state

    found = []
    for trainer, fold_dir in fold_dirs.items():
        log = read_fold_logs(fold_dir)
        checkpoint_file = fold_dir / "checkpoint_final.pth"
        checkpoint = torch.load(checkpoint_file, map_location="cpu", weights_only=False)
        if device == "cuda":
            text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in log.files)
            if COMPILE_LINE not in text:
                raise StepFailed(f"{trainer}: expected {COMPILE_LINE!r} in {log.files} (nnU-Net compiles on CUDA)")
            if checkpoint.get("grad_scaler_state") is None:
                raise StepFailed(f"{trainer}: expected GradScaler state (AMP) in {checkpoint_file}, found none")
        if trainer != edge_gate_trainer:
            continue
        expected = [edge_lambda(e, epochs) for e in range(epochs)]
        if [round(lam, 12) for lam, _ in log.edge_gate] != [round(lam, 12) for lam in expected]:
            raise StepFailed(
                f"{trainer}: expected edge gate lines with lambda {expected} in {log.files}, found {log.edge_gate}"
            )
        state = gate_state_from_checkpoint(checkpoint)  # sigma starts at 1: log sigma 0, or sigma itself 1
        if float(state.get("log_sigma", 0.0)) == 0.0 and float(state.get("direct_sigma", 1.0)) == 1.0:
            raise StepFailed(f"{trainer}: expected a sigma that moved from 1 in {checkpoint_file}, found 1")
        found.append(f"{len(log.edge_gate)} edge gate lines, sigma 1 -> {sigma_from_gate_state(state):.7f}")
    if device == "cuda":
        found.append("compile and AMP on in both trainings")
    return "; ".join(found)


def summary(results: list[StepResult], seconds: float) -> str:
    """The closing lines: every step's result and the verdict."""
    failed = [r.name for r in results if r.status != "PASS"]
    verdict = "PASS: every step" if not failed else f"FAIL: {', '.join(failed)}"
    return "\n".join(["", "summary:", *(r.line() for r in results), f"{verdict} ({seconds:.0f} s in all)"])
