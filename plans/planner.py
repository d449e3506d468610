"""nnU-Net's experiment planner with FilterNet as the 3D network: patch and batch sized for FilterNet.

:class:`FilterNetPlanner` changes two things of nnU-Net's ``ExperimentPlanner``:

- ``get_plans_for_configuration``: 3D configurations are planned with ``UNet_class = FilterNet``, so
  nnU-Net's own loop shrinks the patch and picks the batch size from FilterNet's
  ``compute_conv_feature_map_size`` (through ``static_estimate_VRAM_usage``); the resulting arch_kwargs are
  completed by ``filternet_arch_kwargs`` (explicit Block B kernels). 2D configurations stay nnU-Net's.
- ``save_plans``: a configuration whose preprocessing is identical to the same configuration of the source
  plans (same spacing, transposition, normaliser, resampling) reuses the source's ``data_identifier``, so
  ``-p nnUNetPlans_FilterNet`` trains on the data nnU-Net already preprocessed.
"""

from __future__ import annotations

import os

from batchgenerators.utilities.file_and_folder_operations import isfile, load_json
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.paths import nnUNet_preprocessed

from nnunet_filternet.errors import FilterNetError

#: Name of the plans written by :class:`FilterNetPlanner`.
FILTERNET_PLANS = "nnUNetPlans_FilterNet"

#: Configuration entries that decide what the preprocessed data look like.
PREPROCESSING_KEYS = (
    "spacing",
    "preprocessor_name",
    "normalization_schemes",
    "use_mask_for_norm",
    "resampling_fn_data",
    "resampling_fn_data_kwargs",
    "resampling_fn_seg",
    "resampling_fn_seg_kwargs",
)


def same_preprocessing(plans: dict, name: str, source: dict) -> bool:
    """True if configuration ``name`` is preprocessed identically in ``plans`` and ``source`` (plans dicts)."""
    config = plans["configurations"].get(name)
    other = source.get("configurations", {}).get(name)
    if config is None or other is None or "data_identifier" not in other:
        return False
    if plans.get("transpose_forward") != source.get("transpose_forward"):
        return False
    return all(_as_json(config.get(k)) == _as_json(other.get(k)) for k in PREPROCESSING_KEYS)


def _as_json(value):
    """Lists/tuples/numpy values as plain nested lists and floats, for comparing a fresh plan with a JSON one."""
    import numpy as np

    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_as_json(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    return value


class FilterNetPlanner(ExperimentPlanner):
    """``ExperimentPlanner`` planning FilterNet for 3D configurations (see module doc).

    Args (beyond nnU-Net's): source_plans_name: the plans whose preprocessed data may be shared.
    """

    def __init__(
        self,
        dataset_name_or_id,
        gpu_memory_target_in_gb: float = 8,
        preprocessor_name: str = "DefaultPreprocessor",
        plans_name: str = FILTERNET_PLANS,
        overwrite_target_spacing=None,
        suppress_transpose: bool = False,
        source_plans_name: str = "nnUNetPlans",
    ):
        super().__init__(
            dataset_name_or_id,
            gpu_memory_target_in_gb,
            preprocessor_name,
            plans_name,
            overwrite_target_spacing,
            suppress_transpose,
        )
        self.source_plans_name = source_plans_name

    @staticmethod
    def static_estimate_VRAM_usage(patch_size, *args, **kwargs):
        """nnU-Net's estimate, refusing a patch shrunk to nothing: its planner shrinks the patch until the
        estimate fits the GPU memory target, which never happens for a target below the smallest patch's need."""
        if min(int(p) for p in patch_size) < 1:
            raise FilterNetError(
                f"--gpu-memory-gb: the GPU memory target is too small for any patch (nnU-Net's planner shrank the "
                f"patch to {[int(p) for p in patch_size]} voxels); give a larger target (nnU-Net's default: 8)"
            )
        return ExperimentPlanner.static_estimate_VRAM_usage(patch_size, *args, **kwargs)

    def get_plans_for_configuration(self, spacing, median_shape, data_identifier, approximate_n_voxels_dataset, _cache):
        from dynamic_network_architectures.architectures.unet import PlainConvUNet

        from nnunet_filternet.network.filternet import FilterNet
        from nnunet_filternet.network.from_plans import filternet_arch_kwargs

        is_3d = len(spacing) == 3
        self.UNet_class = FilterNet if is_3d else PlainConvUNet
        plan = super().get_plans_for_configuration(
            spacing, median_shape, data_identifier, approximate_n_voxels_dataset, _cache
        )
        if is_3d:
            architecture = plan["architecture"]
            architecture["arch_kwargs"] = filternet_arch_kwargs(architecture["arch_kwargs"], list(spacing))
        return plan

    def save_plans(self, plans):
        source_file = os.path.join(nnUNet_preprocessed, self.dataset_name, self.source_plans_name + ".json")
        if isfile(source_file):
            source = load_json(source_file)
            for name, config in plans["configurations"].items():
                if "data_identifier" in config and same_preprocessing(plans, name, source):
                    config["data_identifier"] = source["configurations"][name]["data_identifier"]
        super().save_plans(plans)
