"""``filternet demo``: the whole system on the synthetic cohort, in one work folder.

Stages (each resumable, see :mod:`nnunet_filternet.pipeline.stages`):

1. phantom cohort (``filternet phantom``);
2. conversion into an nnU-Net raw dataset with the preset's subject-grouped folds (``filternet convert``);
3. nnU-Net fingerprint, planning and preprocessing through nnU-Net's API (+ our plans preset);
4. training of each trainer on the chosen folds through ``nnUNetv2_train``;
5. each fold's held-out subjects as nnU-Net predicted them at the end of training (its validation outputs);
6. ``filternet restore`` of the leg predictions onto the original scans;
7. ``filternet evaluate``, ``filternet report`` and ``filternet quantify``.

With ``repeats`` N > 1 (``--repeats``), stages 4-6 run once per repeat: repeat 1 trains into ``nnUNet_results``
and writes ``outputs/<trainer>/``, repeat k >= 2 into ``nnUNet_results_r<k>`` and ``outputs/r<k>/<trainer>/``
(so a finished one-repeat folder gains repeats without retraining). With two or more folds trained (the
``study`` preset) or repeats, stage 7 writes ``filternet compare`` of every trainer with the last (the baseline, stock
nnU-Net by default) over the folds and all repeats, on the restored held-out scans, into
``outputs/compare/``: the paired t over folds is valid with one repeat.

Each trainer ``T`` is trained as its budget variant ``T_<epochs>epochs_<iterations>iters_<val>val``
(``training/budget.py``), a class the installed package provides: the demo's models are usable afterwards
from any shell (``filternet predict``, ``nnUNetv2_predict``, ...) with no variable to set.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.pipeline import nnunet_runs
from nnunet_filternet.pipeline.presets import DemoPreset
from nnunet_filternet.pipeline.stages import StageRunner
from nnunet_filternet.training.budget import budget_variant_name

DATASET_ID = 501
DATASET_NAME = "FilterNetPhantom"


class Demo:
    """The demo's folders and stages. ``run()`` does everything; each stage is a method."""

    def __init__(
        self,
        workdir: str | Path,
        preset: DemoPreset,
        jobs: int | None = None,
        da_workers: int | None = None,
        threads: int | None = None,
    ):
        """The demo in ``workdir``; ``da_workers`` and ``threads`` set its nnU-Net runs' environment
        (:func:`~nnunet_filternet.pipeline.nnunet_runs.environment`; None: nnU-Net's and the libraries' defaults)."""
        self.workdir = Path(workdir).resolve()
        self.preset = preset
        self.jobs = jobs
        self.scans = self.workdir / "scans"
        self.folders = nnunet_runs.nnunet_folders(self.workdir)
        self.env = nnunet_runs.environment(self.folders, da_workers=da_workers, threads=threads)
        self.dataset = f"Dataset{DATASET_ID:03d}_{DATASET_NAME}"
        self.out = self.workdir / "outputs"
        self.repeat = 1  # the repeat that stages 4-6 work on (set by run())

    # ---- stages -------------------------------------------------------------------------------
    def make_cohort(self) -> None:
        from nnunet_filternet.phantom import make_cohort

        if self.scans.exists():  # make_cohort writes atomically: a present folder is complete
            return
        p = self.preset
        make_cohort(
            self.scans, n_subjects=p.subjects, n_healthy=p.healthy, seed=0, shape=p.shape, spacing=p.spacing,
            preview=self.workdir / "cohort_preview.png", jobs=self.jobs,
        )  # fmt: skip

    def convert(self) -> None:
        from nnunet_filternet.dataset_conversion.convert import convert_training

        with nnunet_runs.environment_set(self.env):
            convert_training(
                self.scans / "images", self.scans / "labels", DATASET_ID, DATASET_NAME,
                folds=self.preset.n_folds, seed=0, jobs=self.jobs, subjects_csv=self.scans / "subjects.csv",
            )  # fmt: skip

    def plan_and_preprocess(self) -> None:
        from nnunetv2.experiment_planning.plan_and_preprocess_api import (
            extract_fingerprints,
            plan_experiments,
            preprocess,
        )

        nproc = self.jobs or 2
        with nnunet_runs.environment_set(self.env):
            extract_fingerprints([DATASET_ID], num_processes=nproc, check_dataset_integrity=True, clean=True)
            plan_experiments([DATASET_ID])
            self._apply_plans_preset()
            configurations = (self.preset.configuration,)
            preprocess([DATASET_ID], plans_identifier=self.plans, configurations=configurations, num_processes=(nproc,))

    def _apply_plans_preset(self) -> None:
        if self.preset.plans_preset is not None:
            from nnunet_filternet.plans.presets import write_preset

            write_preset(DATASET_ID, self.preset.plans_preset)

    @property
    def plans(self) -> str:
        """The plans identifier trained (``-p``): ``nnUNetPlans``, or the plans preset's."""
        if self.preset.plans_preset is None:
            return "nnUNetPlans"
        from nnunet_filternet.plans.presets import PLANS_NAMES

        return PLANS_NAMES[self.preset.plans_preset]

    def train(self) -> None:
        env = self.repeat_env()
        for trainer in self.preset.trainers:
            for fold in self.preset.folds:
                name = self.trained_name(trainer)
                fold_dir = self.model_dir(trainer) / f"fold_{fold}"
                if (fold_dir / "checkpoint_final.pth").exists() and (fold_dir / "validation" / "summary.json").exists():
                    print(f"  {name} fold {fold}{self._repeat_label()}: already trained", flush=True)
                    continue
                log = self.workdir / "logs" / f"train_{name}_{fold}{self._repeat_suffix()}.log"
                nnunet_runs.run("nnUNetv2_train", self.train_args(trainer, fold), env, log)

    def predict(self) -> None:
        """The held-out legs' predictions: nnU-Net's own cross-validation predictions of each fold.

        ``nnUNetv2_train`` ends by predicting its fold's validation cases (the held-out subjects' legs) with the
        final weights and nnU-Net's default inference (sliding window, step 0.5, Gaussian weighting, mirroring),
        exported at the raw cases' geometry into ``fold_<k>/validation/``: what ``nnUNetv2_predict -f k`` would
        write, and what ``nnUNetv2_find_best_configuration`` scores. They are hard-linked (copied across file
        systems) into ``outputs/[r<k>/]<trainer>/legs/``, refreshed whenever the training wrote a new file.
        """
        for trainer in self.preset.trainers:
            legs_out = self.trainer_out(trainer) / "legs"
            legs_out.mkdir(parents=True, exist_ok=True)
            for fold in self.preset.folds:
                validation = self.model_dir(trainer) / f"fold_{fold}" / "validation"
                for case in self.held_out_cases(fold):
                    src, dst = validation / f"{case}.nii.gz", legs_out / f"{case}.nii.gz"
                    if not src.is_file():
                        raise FilterNetError(
                            f"{src}: expected nnU-Net's validation prediction of held-out case {case} (written at "
                            f"the end of nnUNetv2_train), not found; rerun the demo to train fold {fold} again"
                        )
                    if not (dst.exists() and os.path.samefile(src, dst)):
                        _link_or_copy(src, dst)

    def restore(self) -> None:
        from nnunet_filternet.dataset_conversion.restore import restore_predictions

        # restore writes the scans whose legs were all predicted (the held-out subjects) and skips the rest

        records = self.folders["nnUNet_raw"] / self.dataset / "legs.json"
        for trainer in self.preset.trainers:
            out = self.trainer_out(trainer)
            restore_predictions(out / "legs", records, out / "scans", jobs=self.jobs)

    def evaluate_report_quantify(self) -> str:
        from nnunet_filternet.metrics.evaluate import evaluate_folders
        from nnunet_filternet.quantify.biomarkers import quantify_folder
        from nnunet_filternet.report.report import write_report

        subjects = sorted({c.rsplit("_", 1)[0] for f in self.preset.folds for c in self.held_out_cases(f)})
        labels = self._link_subset(self.scans / "labels", subjects, self.workdir / "held_out" / "labels")
        images = self._link_subset(self.scans / "images", subjects, self.workdir / "held_out" / "scans")
        repeats = range(1, self.preset.repeats + 1)
        for trainer in self.preset.trainers:
            for k in repeats:
                out = self.trainer_out(trainer, k)
                splits = self.folders["nnUNet_preprocessed"] / self.dataset / "splits_final.json"
                evaluate_folders(out / "scans", labels, out / "metrics.csv", jobs=self.jobs, splits=splits)
            out = self.trainer_out(trainer, 1)
            quantify_folder(
                images, out / "scans", out / "biomarkers.csv", subjects_csv=self.scans / "subjects.csv"
            )  # fmt: skip
        names = [self.trained_name(t) for t in self.preset.trainers]
        with nnunet_runs.environment_set(self.env):  # the baseline last, as in compare_restored
            report = write_report(
                [self.results_root(k) / self.dataset for k in repeats], names, names[-1], self.out / "report",
                plans=self.plans, configuration=self.preset.configuration,
            )  # fmt: skip
        if len(self.preset.folds) >= 2 or self.preset.repeats > 1:
            self.compare_restored()
        return str(report)

    def compare_restored(self) -> None:
        """``filternet compare`` of every trainer with the baseline (the last) on the restored held-out scans."""
        from nnunet_filternet.compare.files import compare_files

        repeats = range(1, self.preset.repeats + 1)
        *candidates, baseline = self.preset.trainers
        for trainer in candidates:
            result = compare_files(
                [self.trainer_out(baseline, k) / "metrics.csv" for k in repeats],
                [self.trainer_out(trainer, k) / "metrics.csv" for k in repeats],
                self.out / "compare" / f"{trainer}_vs_{baseline}.csv", names=(baseline, trainer),
            )  # fmt: skip
            print(result.table_markdown, "", *result.summary, sep="\n", flush=True)

    # ---- helpers ------------------------------------------------------------------------------
    def train_args(self, trainer: str, fold: int, device: str | None = None) -> list:
        """``nnUNetv2_train`` arguments of one training of the current repeat (``--c`` when a checkpoint exists)."""
        fold_dir = self.model_dir(trainer) / f"fold_{fold}"
        args = [DATASET_ID, self.preset.configuration, fold, "-tr", self.trained_name(trainer), "-p", self.plans]
        args += ["-device", device or self.preset.device]
        if (fold_dir / "checkpoint_latest.pth").exists() or (fold_dir / "checkpoint_final.pth").exists():
            args.append("--c")
        return args

    def trained_name(self, trainer: str) -> str:
        """The budget variant of ``trainer`` that the demo trains, e.g. ``nnUNetTrainer_40epochs_40iters_4val``."""
        return budget_variant_name(trainer, self.preset.budget)

    def results_root(self, repeat: int | None = None) -> Path:
        """``nnUNet_results`` of a repeat (default: the current one); repeat k >= 2 in ``nnUNet_results_r<k>``."""
        k = self.repeat if repeat is None else repeat
        return self.folders["nnUNet_results"] if k == 1 else self.workdir / f"nnUNet_results_r{k}"

    def repeat_env(self) -> dict[str, str]:
        """The nnU-Net environment of the current repeat (its results folder created)."""
        root = self.results_root()
        root.mkdir(parents=True, exist_ok=True)
        return {**self.env, "nnUNet_results": str(root)}

    def trainer_out(self, trainer: str, repeat: int | None = None) -> Path:
        """A trainer's outputs for a repeat: ``outputs/<trainer>`` (repeat 1), ``outputs/r<k>/<trainer>``."""
        k = self.repeat if repeat is None else repeat
        return self.out / trainer if k == 1 else self.out / f"r{k}" / trainer

    def _repeat_suffix(self, repeat: int | None = None) -> str:
        """Suffix of a repeat's stage and log names: ``""`` for repeat 1, ``_r<k>`` for repeat k >= 2."""
        k = self.repeat if repeat is None else repeat
        return "" if k == 1 else f"_r{k}"

    def _repeat_label(self) -> str:
        return "" if self.preset.repeats == 1 else f" (repeat {self.repeat})"

    def model_dir(self, trainer: str, repeat: int | None = None) -> Path:
        name = f"{self.trained_name(trainer)}__{self.plans}__{self.preset.configuration}"
        return self.results_root(repeat) / self.dataset / name

    def check_trainers(self) -> None:
        """Fail before any stage when nnU-Net cannot find a trainer."""
        from nnunet_filternet.nnunet_ext import find_trainer

        with nnunet_runs.environment_set(self.env):
            unknown = [t for t in self.preset.trainers if find_trainer(self.trained_name(t)) is None]
        if unknown:
            raise FilterNetError(
                f"--trainers: nnU-Net cannot find {', '.join(unknown)} (looked in nnunetv2 and in "
                f"nnUNet_extTrainer={self.env.get('nnUNet_extTrainer')}); name trainers nnU-Net finds"
            )

    def held_out_cases(self, fold: int) -> list[str]:
        splits = json.loads(
            (self.folders["nnUNet_preprocessed"] / self.dataset / "splits_final.json").read_text(encoding="utf-8")
        )
        return sorted(splits[fold]["val"])

    @staticmethod
    def _link_subset(src: Path, subjects: list[str], folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for s in subjects:
            target = folder / f"{s}.nii.gz"
            if not target.exists():
                os.symlink(src / f"{s}.nii.gz", target)
        return folder

    # ---- all ----------------------------------------------------------------------------------
    def run(self) -> str:
        self.check_trainers()
        settings = {k: v for k, v in self.preset.as_dict().items() if k != "repeats"}
        runner = StageRunner(self.workdir / "demo_state.json", settings)
        n = self.preset.repeats
        stages = [
            ("phantom", f"phantom cohort: {self.preset.subjects} subjects", self.make_cohort, 1),
            ("convert", "conversion to an nnU-Net dataset (legs, mirroring, folds)", self.convert, 1),
            ("plan", "nnU-Net fingerprint, plans and preprocessing", self.plan_and_preprocess, 1),
        ]
        for k in range(1, n + 1):
            of = "" if n == 1 else f" (repeat {k} of {n})"
            suffix = self._repeat_suffix(k)
            trained = f"training {', '.join(self.preset.trainers)} on folds {list(self.preset.folds)}{of}"
            stages += [
                (f"train{suffix}", trained, self.train, k),
                (f"predict{suffix}", f"held-out predictions from nnU-Net's cross-validation{of}", self.predict, k),
                (f"restore{suffix}", f"restoring leg predictions onto the original scans{of}", self.restore, k),
            ]
        report = "report" if n == 1 else f"report_{n}repeats"
        stages.append((report, "evaluation, report and biomarkers", self.evaluate_report_quantify, 1))
        for i, (name, desc, fn, repeat) in enumerate(stages, 1):
            self.repeat = repeat
            runner.run(i, len(stages), name, desc, fn)
        self.repeat = 1
        return str(self.out / "report" / "report.md")


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` becomes a hard link to ``src`` (a copy across file systems), replaced atomically."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def run_demo(
    workdir: str | Path,
    preset: DemoPreset,
    subjects: int | None = None,
    folds: list[int] | None = None,
    trainers: list[str] | None = None,
    jobs: int | None = None,
    repeats: int | None = None,
) -> Path:
    """Run (or continue) the demo in ``workdir``; return the report's path. Overrides replace preset fields."""
    if repeats is not None:
        if repeats < 1:
            raise FilterNetError(f"--repeats {repeats}: expected at least 1")
        preset = replace(preset, repeats=repeats)
    if subjects is not None:
        if subjects < preset.n_folds:
            raise FilterNetError(
                f"--subjects {subjects}: at least {preset.n_folds} subjects are needed for {preset.n_folds} folds"
            )
        preset = replace(preset, subjects=subjects, healthy=max(1, round(subjects * preset.healthy / preset.subjects)))
    if folds is not None:
        bad = [f for f in folds if f not in range(preset.n_folds)]
        if bad:
            raise FilterNetError(f"--folds {bad}: folds are 0 to {preset.n_folds - 1}")
        preset = replace(preset, folds=tuple(folds))
    if trainers:
        preset = replace(preset, trainers=tuple(trainers))
    return Path(Demo(workdir, preset, jobs).run())
