"""A tiny nnU-Net raw dataset for the trainer and plans tests.

Each case is a ``12 x 64 x 64`` (z, y, x) volume at ``0.7 x 0.7 x 7 mm`` (x, y, z), so it is anisotropic like
the paper's scans and the edge gate acts in-plane. Every case holds one ellipsoidal blob per compartment
label 1..5 at a random place, each with its own mean intensity, on a noisy background; the labels are the
project's (``nnunet_filternet.labels.LABELS``) and ``dataset.json`` carries the paper's edge weights W.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_filternet.labels import EDGE_WEIGHTS_KEY, LABELS, PAPER_EDGE_WEIGHTS

#: numpy shape (z, y, x) of every case.
SHAPE = (12, 64, 64)
#: SimpleITK spacing (x, y, z) in mm.
SPACING = (0.7, 0.7, 7.0)


def _blob_case(rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One image (float32) and label map (uint8), both ``shape`` (z, y, x)."""
    z, y, x = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    labels = np.zeros(shape, dtype=np.uint8)
    image = rng.normal(0.0, 0.2, size=shape).astype(np.float32)
    for value in range(1, len(LABELS)):
        centre = [rng.uniform(0.3 * s, 0.7 * s) for s in shape]
        radii = (rng.uniform(3.0, 5.0), rng.uniform(6.0, 12.0), rng.uniform(6.0, 12.0))
        inside = sum(((a - c) / r) ** 2 for a, c, r in zip((z, y, x), centre, radii)) <= 1.0
        labels[inside] = value
    for value in range(1, len(LABELS)):
        image[labels == value] += 0.6 * value
    return image, labels


def write_tiny_dataset(
    raw_root: str | Path,
    dataset_id: int = 991,
    name: str = "TinyCalf",
    n_cases: int = 6,
    shape: tuple[int, int, int] = SHAPE,
    spacing: tuple[float, float, float] = SPACING,
    seed: int = 0,
) -> str:
    """Write ``raw_root/DatasetXXX_name`` (imagesTr, labelsTr, dataset.json) and return the dataset name.

    Args:
        raw_root: the ``nnUNet_raw`` folder.
        dataset_id: nnU-Net dataset id (three digits).
        name: dataset name after the id.
        n_cases: number of training cases.
        shape: numpy shape (z, y, x) of each case in voxels.
        spacing: SimpleITK spacing (x, y, z) in mm.
        seed: random seed; the same arguments give the same files.
    """
    import SimpleITK as sitk

    from nnunet_filternet.utils.atomic import write_image, write_json

    dataset_name = f"Dataset{dataset_id:03d}_{name}"
    folder = Path(raw_root) / dataset_name
    rng = np.random.default_rng(seed)
    for i in range(n_cases):
        image, labels = _blob_case(rng, shape)
        for array, target in ((image, f"imagesTr/case{i:02d}_0000.nii.gz"), (labels, f"labelsTr/case{i:02d}.nii.gz")):
            itk = sitk.GetImageFromArray(array)
            itk.SetSpacing(spacing)
            write_image(itk, folder / target)
    write_json(
        folder / "dataset.json",
        {
            "channel_names": {"0": "T1"},
            "labels": dict(LABELS),
            "numTraining": n_cases,
            "file_ending": ".nii.gz",
            EDGE_WEIGHTS_KEY: list(PAPER_EDGE_WEIGHTS),
        },
    )
    return dataset_name


# --- a planned and preprocessed copy, shared by all trainer / plans tests of a session -------------------
DATASET_ID = 991
#: Five cases: nnU-Net's 5-fold split then validates on one case per fold (fast).
N_CASES = 5


def nnunet_command(name: str) -> str:
    """Path of an nnU-Net console script of this interpreter's environment (e.g. ``nnUNetv2_train``)."""
    import sys

    return str(Path(sys.executable).parent / name)


@dataclass(frozen=True)
class TinyNnunet:
    """Folders of the session's tiny dataset: raw, planned (nnUNetPlans + nnUNetPlans_tiny) and preprocessed."""

    root: Path
    dataset_name: str
    dataset_id: int = DATASET_ID

    @property
    def raw(self) -> Path:
        return self.root / "nnUNet_raw"

    @property
    def preprocessed(self) -> Path:
        return self.root / "nnUNet_preprocessed"

    @property
    def dataset_folder(self) -> Path:
        """``nnUNet_preprocessed/DatasetXXX_Name``."""
        return self.preprocessed / self.dataset_name

    def env(self, results: str | Path, **extra) -> dict:
        """Environment for nnU-Net subprocesses writing results to ``results`` (CPU, one worker, no DA workers)."""
        import os

        env = dict(os.environ)
        env.update(
            nnUNet_raw=str(self.raw),
            nnUNet_preprocessed=str(self.preprocessed),
            nnUNet_results=str(results),
            nnUNet_def_n_proc="1",
            nnUNet_n_proc_DA="0",
            nnUNet_npp="1",
            nnUNet_nps="1",
            OMP_WAIT_POLICY="PASSIVE",  # idle OpenMP threads sleep: concurrent runs on 2 cores stay fast
        )
        env.update({k: str(v) for k, v in extra.items()})
        return env


def run_checked(args: list[str], env: dict, timeout: float = 600):
    """Run a command; raise AssertionError with its output tail if it fails. Returns the CompletedProcess."""
    import subprocess

    result = subprocess.run(
        args, capture_output=True, text=True, encoding="utf-8", errors="replace", env=env, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def prepare_tiny_nnunet(root: str | Path) -> TinyNnunet:
    """Write the tiny dataset and run nnU-Net's planning and preprocessing for ``nnUNetPlans`` and ``nnUNetPlans_tiny``.

    Uses nnU-Net's CLIs and ``filternet plans --preset tiny``, as a user would.
    """
    import sys

    root = Path(root)
    tiny = TinyNnunet(root, write_tiny_dataset(root / "nnUNet_raw", DATASET_ID, n_cases=N_CASES))
    tiny.preprocessed.mkdir(parents=True, exist_ok=True)
    env = tiny.env(root / "nnUNet_results")
    del env["nnUNet_n_proc_DA"]  # nnU-Net's planner needs at least one thread for its estimate
    d = DATASET_ID
    run_checked([nnunet_command("nnUNetv2_plan_and_preprocess"), *f"-d {d} -c 3d_fullres -npfp 1 -np 1".split()], env)
    run_checked([sys.executable, "-m", "nnunet_filternet", *f"plans {d} --preset tiny".split()], env)
    run_checked(
        [nnunet_command("nnUNetv2_preprocess"), *f"-d {d} -plans_name nnUNetPlans_tiny -c 3d_fullres".split()], env
    )
    return tiny
