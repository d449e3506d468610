"""The paper's protocol: augmentation distributions measured by sampling, and the epoch length.

The augmentation is measured on what it does to an image, not on its parameters: three small Gaussian blobs
(one per channel) at known offsets from the patch centre are pushed through the ``...Paper`` trainers'
training transforms, and the linear map between the blobs' offsets before and after gives each sample's
rotation angle and its zoom along y and x.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

#: Final patch (z, y, x) of the sampling test, and the number of samples drawn.
PATCH = (2, 48, 48)
N_SAMPLES = 800
CPU = torch.device("cpu")
#: Offset of the two outer blobs from the centre blob, in voxels (along y and along x).
OFFSET = 10.0


def blob_image(crop: list[int]) -> torch.Tensor:
    """4 channels of shape ``crop``: blobs at the centre, +OFFSET along y, +OFFSET along x, and a constant 1."""
    z, y, x = crop
    yy, xx = torch.meshgrid(torch.arange(y, dtype=torch.float32), torch.arange(x, dtype=torch.float32), indexing="ij")
    cy, cx = (y - 1) / 2, (x - 1) / 2
    channels = []
    for dy, dx in ((0.0, 0.0), (OFFSET, 0.0), (0.0, OFFSET)):
        channels.append(torch.exp(-((yy - cy - dy) ** 2 + (xx - cx - dx) ** 2) / (2 * 2.5**2)))
    channels.append(torch.ones(y, x))
    return torch.stack(channels)[:, None].expand(-1, z, -1, -1).contiguous()


def centroid(plane: torch.Tensor) -> np.ndarray:
    """Intensity-weighted centre (y, x) of a 2D map."""
    yy, xx = torch.meshgrid(*(torch.arange(s, dtype=torch.float64) for s in plane.shape), indexing="ij")
    w = plane.double()
    return np.array([float((w * yy).sum() / w.sum()), float((w * xx).sum() / w.sum())])


def measure(image: torch.Tensor) -> tuple[float, float, float]:
    """(angle in degrees, zoom along y, zoom along x) of one transformed blob image (slice 0).

    The transform maps an input offset q to the output offset L q with L = S^-1 R^T (batchgeneratorsv2: input
    coordinates = R S output coordinates); the rows of L have the lengths 1/s = zoom, and its normalised rows
    are those of R^T.
    """
    c0, cy, cx = (centroid(image[c, 0]) for c in range(3))
    L = np.stack([cy - c0, cx - c0], axis=1) / OFFSET  # columns: images of the unit y and x offsets
    zoom = np.linalg.norm(L, axis=1)
    rotation_t = L / zoom[:, None]
    return math.degrees(math.atan2(rotation_t[0, 1], rotation_t[0, 0])), float(zoom[0]), float(zoom[1])


@pytest.fixture(scope="module")
def samples() -> dict[str, np.ndarray]:
    """N_SAMPLES draws of the paper trainers' training transforms (seeded), measured."""
    from nnunet_filternet.training.paper_augmentation import initial_patch_size, rotation_range
    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNetPaper

    transforms = nnUNetTrainerFilterNetPaper.get_training_transforms(PATCH, rotation_range(), None, None, True)
    crop = initial_patch_size(PATCH)
    image = blob_image(crop)
    seg = torch.zeros(1, *crop, dtype=torch.int16)
    torch.manual_seed(0)
    np.random.seed(0)
    rows, min_constant, slices_alike = [], [], []
    for _ in range(N_SAMPLES):
        out = transforms(image=image.clone(), segmentation=seg.clone())["image"]
        assert tuple(out.shape) == (4, *PATCH)
        rows.append(measure(out))
        min_constant.append(float(out[3].min()))
        slices_alike.append(bool(torch.equal(out[:, 0], out[:, 1])))
    angle, zoom_y, zoom_x = np.array(rows).T
    return {
        "angle": angle,
        "zoom_y": zoom_y,
        "zoom_x": zoom_x,
        "min_constant": np.array(min_constant),
        "slices_alike": np.array(slices_alike),
    }


def identity(samples: dict) -> np.ndarray:
    """Samples that were only cropped (no rotation, zoom 1 on both axes, exactly)."""
    return (
        (np.abs(samples["angle"]) < 1e-6)
        & (np.abs(samples["zoom_y"] - 1) < 1e-6)
        & (np.abs(samples["zoom_x"] - 1) < 1e-6)
    )


def test_a_quarter_of_the_samples_is_left_as_it_is(samples):
    """The paper's epoch: each patch once as it is and 3 times augmented, i.e. 1/4 unaugmented."""
    fraction = identity(samples).mean()
    assert abs(fraction - 0.25) < 0.05  # binomial, 800 draws: 3 standard deviations are 0.046


def test_every_augmented_copy_is_rotated_and_scaled_on_both_axes(samples):
    augmented = ~identity(samples)
    rotated = np.abs(samples["angle"][augmented]) > 0.1  # degrees: 1 % of U(-10, 10) lies closer to 0
    zoomed = (np.abs(samples["zoom_y"][augmented] - 1) > 0.002) & (np.abs(samples["zoom_x"][augmented] - 1) > 0.002)
    assert rotated.mean() > 0.95 and zoomed.mean() > 0.95  # independent draws would leave 20 % unrotated


def test_rotation_is_uniform_within_10_degrees(samples):
    angle = samples["angle"][~identity(samples)]
    assert np.abs(angle).max() < 10.05 and np.abs(angle).max() > 9.5
    assert stats.kstest(angle, stats.uniform(-10, 20).cdf).pvalue > 1e-3
    assert samples["slices_alike"].all()  # every slice of a patch moves alike: the rotation is in-plane


def test_x_and_y_zoom_are_independent_and_uniform_in_0_8_to_1_2(samples):
    augmented = ~identity(samples)
    zoom_y, zoom_x = samples["zoom_y"][augmented], samples["zoom_x"][augmented]
    for zoom in (zoom_y, zoom_x):
        assert 0.795 < zoom.min() < 0.82 and 1.18 < zoom.max() < 1.205
        assert stats.kstest(zoom, stats.uniform(0.8, 0.4).cdf).pvalue > 1e-3
    assert abs(np.corrcoef(zoom_y, zoom_x)[0, 1]) < 0.15  # synchronised scaling would give 1
    assert abs(((zoom_y > 1) & (zoom_x > 1)).mean() - 0.25) < 0.07


def test_the_initial_crop_leaves_no_empty_corners(samples):
    assert samples["min_constant"].min() > 0.999  # a constant channel stays constant: no padding reached the patch


@pytest.mark.parametrize("patch", [(2, 48, 48), (1, 40, 64), (64, 36)])
@pytest.mark.parametrize("angle_deg", [10.0, -10.0])
def test_the_initial_crop_suffices_for_the_largest_rotation_and_smallest_zoom(monkeypatch, patch, angle_deg):
    """The rare extreme (|angle| 10 degrees, zoom 0.8 on both axes), forced: still no padding in the patch."""
    from nnunet_filternet.training import paper_augmentation

    monkeypatch.setattr(paper_augmentation, "AUGMENT_P", 1.0)
    monkeypatch.setattr(paper_augmentation, "coordinate_scale", lambda *args, **kwargs: 1 / 0.8)
    angle = math.radians(angle_deg)
    monkeypatch.setattr(paper_augmentation, "rotation_range", lambda: (angle, angle))
    transforms = paper_augmentation.paper_training_transforms(patch)
    crop = paper_augmentation.initial_patch_size(patch)
    image = torch.ones(1, *crop)
    out = transforms(image=image, segmentation=torch.zeros(1, *crop, dtype=torch.int16))["image"]
    assert tuple(out.shape) == (1, *patch) and out.min() > 0.999


# --- epoch length ----------------------------------------------------------------------------------------
def test_paper_iterations_per_epoch():
    from nnunet_filternet.training.paper_protocol import paper_iterations_per_epoch

    assert paper_iterations_per_epoch(60, 2) == 1080  # the paper: 30 training subjects x 2 legs, batch 2
    assert paper_iterations_per_epoch(4, 2) == 72
    assert paper_iterations_per_epoch(5, 4) == 45
    assert paper_iterations_per_epoch(1, 5) == 8  # 36 / 5 rounded up: every patch of the epoch is drawn
    with pytest.raises(ValueError, match="training case"):
        paper_iterations_per_epoch(0, 2)


@pytest.fixture
def paper_trainer(tiny_nnunet, tmp_path, monkeypatch):
    """Make a (not initialised) trainer of a class on the session's tiny plans, fold 0, CPU."""
    monkeypatch.setenv("nnUNet_preprocessed", str(tiny_nnunet.preprocessed))
    monkeypatch.setenv("nnUNet_raw", str(tiny_nnunet.raw))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    dataset_json = json.loads((tiny_nnunet.dataset_folder / "dataset.json").read_text())

    def make(cls):
        plans = json.loads((tiny_nnunet.dataset_folder / "nnUNetPlans_tiny.json").read_text())
        plans["continue_training"] = False  # what nnUNetv2_train adds (and the trainer pops) before it builds one
        return cls(plans, "3d_fullres", 0, dataset_json, CPU)

    return make


def test_epoch_length_follows_the_training_cases_of_the_fold(paper_trainer, tiny_nnunet):
    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNetPaper, nnUNetTrainerUNetPaper_5epochs

    for cls in (nnUNetTrainerFilterNetPaper, nnUNetTrainerUNetPaper_5epochs):
        trainer = paper_trainer(cls)
        assert trainer.num_iterations_per_epoch is None and trainer.oversample_foreground_percent == 0.0
        tr_keys, _ = trainer.do_split()  # nnU-Net's split (written by nnU-Net if no test wrote it yet)
        splits = json.loads((tiny_nnunet.dataset_folder / "splits_final.json").read_text())
        n_train = len(splits[0]["train"])
        assert len(tr_keys) == n_train == 4
        assert trainer.num_iterations_per_epoch == math.ceil(9 * 4 * n_train / trainer.configuration_manager.batch_size)

    class FixedLength(nnUNetTrainerFilterNetPaper):
        def __init__(self, plans, configuration, fold, dataset_json, device=CPU):
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.num_iterations_per_epoch = 7

    trainer = paper_trainer(FixedLength)
    trainer.do_split()
    assert trainer.num_iterations_per_epoch == 7  # a budget set by a subclass is kept
