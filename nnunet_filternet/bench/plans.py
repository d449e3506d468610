"""The one nnU-Net configuration every benchmarked model shares: plans, patch, batch and inference volume.

Either a real ``nnUNetPlans.json`` (``--plans-file FILE --configuration NAME``) or a built-in 3d_fullres
configuration for the phantom leg data (0.7 x 0.7 x 7 mm) at one of the :data:`SIZES` (``--size``). The built-in
configuration is what nnU-Net's default planner writes for that patch
(:func:`nnunet_filternet.plans.topology.plain_unet_configuration`: nnU-Net's ``get_pool_and_conv_props`` and its
planner's widths
and convs per stage); the stock variants add the ResEnc planners' network on the same topology. Axes are in
nnU-Net's order (z, y, x).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from nnunet_filternet.errors import FilterNetError, InputError
from nnunet_filternet.labels import EDGE_WEIGHTS_KEY, LABELS, PAPER_EDGE_WEIGHTS
from nnunet_filternet.plans.topology import RESENC_UNET, plain_unet_configuration, resenc_kwargs
from nnunet_filternet.training.networks import FILTERNET, PLAIN_UNET

#: Voxel spacing of the phantom legs (and the paper's scans), (z, y, x) in mm.
PHANTOM_SPACING_ZYX: tuple[float, float, float] = (7.0, 0.7, 0.7)

#: Configuration variants added to every benchmarked plans for stock nnU-Net's trainer: the plain U-Net of the
#: configuration (also when the plans name FilterNet) and ResEnc M on the same topology.
STOCK_VARIANTS: tuple[str, ...] = ("stock", "resenc_m")


@dataclass(frozen=True)
class Sizes:
    """Sizes of a built-in configuration.

    Attributes:
        patch_size: training patch (z, y, x) in voxels.
        batch_size: patches per training step.
        inference_shape: volume (z, y, x) in voxels predicted by the sliding window ("one leg").
    """

    patch_size: tuple[int, int, int]
    batch_size: int
    inference_shape: tuple[int, int, int]


#: Built-in sizes: ``cuda`` is nnU-Net-like for a leg (30 x 256 x 256 voxels, 2 x 3 x 3 tiles); ``cpu`` and
#: ``quick`` are smaller so that all models finish in minutes on two cores: ``cpu`` predicts 1.5 patches in-plane
#: (2 x 2 tiles), ``quick`` 1.5 patches along x only (2 tiles, still exercising nnU-Net's tile blending).
SIZES: dict[str, Sizes] = {
    "cuda": Sizes(patch_size=(24, 160, 160), batch_size=2, inference_shape=(30, 256, 256)),
    "cpu": Sizes(patch_size=(16, 96, 96), batch_size=2, inference_shape=(16, 144, 144)),
    "quick": Sizes(patch_size=(16, 64, 64), batch_size=2, inference_shape=(16, 64, 96)),
}

#: dataset.json used when the plans file has none beside it: one T1 channel, the project's labels and the
#: paper's edge-loss weights W (as ``filternet convert`` writes them).
DEFAULT_DATASET_JSON: dict = {
    "channel_names": {"0": "T1"},
    "labels": dict(LABELS),
    "file_ending": ".nii.gz",
    EDGE_WEIGHTS_KEY: list(PAPER_EDGE_WEIGHTS),
}


def variant_name(configuration: str, variant: str | None) -> str:
    """Name of a stock variant of ``configuration`` in the benchmark's plans (the configuration itself for None)."""
    return configuration if variant is None else f"{configuration}_bench_{variant}"


def with_stock_variants(plans: dict, configuration: str) -> dict:
    """A copy of ``plans`` adding the :data:`STOCK_VARIANTS` of ``configuration`` (inheriting all but the network).

    Args:
        plans: nnUNetPlans.json content whose ``configuration`` names PlainConvUNet or FilterNet.
        configuration: the configuration every model shares.

    Returns:
        The new plans dict; ``plans`` is not modified.
    """
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_filternet.training.networks import plain_arch_kwargs

    architecture = PlansManager(plans).get_configuration(configuration).configuration["architecture"]
    plain = plain_arch_kwargs(architecture["arch_kwargs"])
    networks = {"stock": (PLAIN_UNET, plain), "resenc_m": (RESENC_UNET, resenc_kwargs(plain))}
    out = copy.deepcopy(plans)
    for variant in STOCK_VARIANTS:
        class_name, kwargs = networks[variant]
        out["configurations"][variant_name(configuration, variant)] = {
            "inherits_from": configuration,
            "architecture": {
                "network_class_name": class_name,
                "arch_kwargs": kwargs,
                "_kw_requires_import": list(architecture["_kw_requires_import"]),
            },
        }
    return out


def builtin_plans(sizes: Sizes, spacing: tuple[float, ...] = PHANTOM_SPACING_ZYX) -> dict:
    """A minimal nnUNetPlans.json dict with one ``3d_fullres`` configuration of these ``sizes``."""
    return {
        "dataset_name": "Dataset000_FilterNetBench",
        "plans_name": "nnUNetPlans",
        "label_manager": "LabelManager",
        "configurations": {
            "3d_fullres": plain_unet_configuration(
                sizes.patch_size, sizes.batch_size, spacing, data_identifier="nnUNetPlans_bench"
            )
        },
    }


@dataclass(frozen=True)
class BenchSetup:
    """Plans, configuration and data sizes shared by every benchmarked model.

    Attributes:
        plans: the whole plans dict (nnUNetPlans.json layout), with the :data:`STOCK_VARIANTS` of
            ``configuration`` added (:func:`with_stock_variants`).
        configuration: name of the configuration used, e.g. ``3d_fullres``.
        dataset_json: dataset.json dict (labels and channels).
        inference_shape: volume predicted by the sliding window, spatial axes in nnU-Net's order.
        source: where the plans came from, for the report.
        size: the :data:`SIZES` key of built-in plans, None for a plans file.
    """

    plans: dict
    configuration: str
    dataset_json: dict
    inference_shape: tuple[int, ...]
    source: str
    size: str | None = None

    @cached_property
    def plans_manager(self):
        """nnU-Net's ``PlansManager`` of :attr:`plans`."""
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        return PlansManager(self.plans)

    @cached_property
    def configuration_manager(self):
        """nnU-Net's ``ConfigurationManager`` of :attr:`configuration`."""
        return self.plans_manager.get_configuration(self.configuration)

    def configuration_manager_for(self, variant: str | None):
        """The ``ConfigurationManager`` of a stock variant (:data:`STOCK_VARIANTS`), or of the configuration."""
        return self.plans_manager.get_configuration(variant_name(self.configuration, variant))

    @cached_property
    def label_manager(self):
        """nnU-Net's ``LabelManager`` of :attr:`dataset_json`."""
        return self.plans_manager.get_label_manager(self.dataset_json)

    @property
    def patch_size(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.configuration_manager.patch_size)

    @property
    def batch_size(self) -> int:
        return int(self.configuration_manager.batch_size)

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(float(s) for s in self.configuration_manager.spacing)

    @property
    def num_input_channels(self) -> int:
        from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

        return determine_num_input_channels(self.plans_manager, self.configuration_manager, self.dataset_json)

    @property
    def num_classes(self) -> int:
        """Output channels (segmentation heads) of every network."""
        return int(self.label_manager.num_segmentation_heads)

    def describe(self) -> dict:
        """JSON-ready summary for the report."""
        kwargs = self.configuration_manager.network_arch_init_kwargs
        return {
            "source": self.source,
            "size": self.size,
            "configuration": self.configuration,
            "patch_size": list(self.patch_size),
            "batch_size": self.batch_size,
            "spacing_mm": list(self.spacing),
            "n_stages": kwargs["n_stages"],
            "features_per_stage": list(kwargs["features_per_stage"]),
            "strides": [list(s) for s in kwargs["strides"]],
            "inference_shape": list(self.inference_shape),
            "num_classes": self.num_classes,
        }


def _inference_shape_for(patch_size: tuple[int, ...]) -> tuple[int, ...]:
    """One patch, 1.5 patches along the last axis: two sliding-window tiles, as the ``quick`` size."""
    return (*patch_size[:-1], (3 * patch_size[-1]) // 2)


def builtin_setup(size: str) -> BenchSetup:
    """The built-in phantom-leg configuration of a :data:`SIZES` key (``cpu``, ``cuda`` or ``quick``)."""
    sizes = SIZES[size]
    return BenchSetup(
        plans=with_stock_variants(builtin_plans(sizes), "3d_fullres"),
        configuration="3d_fullres",
        dataset_json=DEFAULT_DATASET_JSON,
        inference_shape=sizes.inference_shape,
        source=f"built-in 3d_fullres for the phantom legs ({size} size)",
        size=size,
    )


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise InputError(path, f"expected {what} (a JSON file), found no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, f"expected {what} in JSON, could not parse it ({e})") from None
    if not isinstance(data, dict):
        raise InputError(path, f"expected {what} (a JSON object), found {type(data).__name__}")
    return data


def setup_from_plans_file(plans_file: str | Path, configuration: str, quick: bool = False) -> BenchSetup:
    """A setup from a real ``nnUNetPlans.json`` and one of its PlainConvUNet or FilterNet configurations.

    The dataset.json beside the plans file (nnU-Net's preprocessed folder keeps both) gives the labels and
    channels; without one the project's labels and one channel are assumed. The inference volume is the
    configuration's median image size, or with ``quick`` one patch, 1.5 along the last axis. The plans file is
    only read.

    Raises:
        InputError: missing or unreadable file, unknown configuration, or a network other than PlainConvUNet
            or FilterNet.
    """
    plans_file = Path(plans_file)
    plans = _read_json(plans_file, "an nnUNetPlans.json")
    configurations = plans.get("configurations")
    if not isinstance(configurations, dict) or not configurations:
        raise InputError(plans_file, "expected nnU-Net plans with a 'configurations' object, found none")
    if configuration not in configurations:
        raise InputError(
            plans_file, f"expected configuration {configuration!r}, found only {sorted(configurations)} in the plans"
        )
    dataset_json_file = plans_file.with_name("dataset.json")
    dataset_json = _read_json(dataset_json_file, "a dataset.json") if dataset_json_file.exists() else None
    setup = BenchSetup(
        plans=plans,
        configuration=configuration,
        dataset_json=dataset_json or DEFAULT_DATASET_JSON,
        inference_shape=(),
        source=str(plans_file),
    )
    try:
        manager = setup.configuration_manager
        arch = manager.network_arch_class_name
        patch = tuple(int(p) for p in manager.patch_size)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise InputError(plans_file, f"expected a complete nnU-Net configuration {configuration!r} ({e})") from None
    if arch not in (PLAIN_UNET, FILTERNET):
        raise InputError(
            plans_file,
            f"expected configuration {configuration!r} to use {PLAIN_UNET} (nnU-Net's default plans) or {FILTERNET} "
            f"(`filternet plans`), from which every benchmarked model is derived; found {arch}",
        )
    median = manager.configuration.get("median_image_size_in_voxels")
    if quick or not median:
        shape = _inference_shape_for(patch)
    else:
        shape = tuple(max(int(round(m)), p) for m, p in zip(median, patch))
    return dataclasses.replace(setup, plans=with_stock_variants(plans, configuration), inference_shape=shape)


def resolve_setup(
    device: str,
    plans_file: str | Path | None,
    configuration: str | None,
    quick: bool = False,
    size: str | None = None,
) -> BenchSetup:
    """The setup the CLI asks for: a plans file's configuration, or the built-in plans at one of the sizes.

    Args:
        device: ``cpu`` or ``cuda``; picks the built-in size unless ``quick`` or ``size`` does.
        plans_file: an nnUNetPlans.json, or None for the built-in plans.
        configuration: configuration in ``plans_file`` (default ``3d_fullres``).
        quick: smallest sizes (the ``quick`` size, or a small inference volume with a plans file).
        size: a :data:`SIZES` key, only without ``plans_file``.
    """
    if plans_file is None:
        if configuration is not None:
            raise FilterNetError("--configuration needs --plans-file (the built-in plans have only 3d_fullres)")
        return builtin_setup(size or ("quick" if quick else device))
    if size is not None:
        raise FilterNetError("--size chooses built-in plans; it cannot be combined with --plans-file")
    return setup_from_plans_file(plans_file, configuration or "3d_fullres", quick)
