"""Plans presets written next to a dataset's ``nnUNetPlans.json``: ``filternet``, ``tiny`` and ``paper``.

==========  ==========================  ========================================================================
preset      plans name                  what changes against nnU-Net's plans
==========  ==========================  ========================================================================
filternet   ``nnUNetPlans_FilterNet``   3D network = our FilterNet, patch/batch re-planned by nnU-Net's planner
                                        for it (:class:`nnunet_filternet.plans.planner.FilterNetPlanner`); shares
                                        preprocessed data
tiny        ``nnUNetPlans_tiny``        ``3d_fullres`` and ``2d``: in-plane spacing x2 (the slice axis kept;
                                        see :func:`tiny_spacing`), patch <= 8 x 48 x 48 (2d: 48 x 48, batch
                                        16), features 8-16-32-64, batch 2; needs its own preprocessing
                                        (``nnUNetPlans_tiny_3d_fullres``, ``nnUNetPlans_tiny_2d``)
paper       ``nnUNetPlans_paper``       ``3d_fullres`` only: the paper's network, size and patch: Block A of
                                        3x3x3 convs at every stage (so zeta 7, 5, 3 on every axis), BatchNorm,
                                        ReLU, widths b, 2b, 4b, ... with b such that the U-Net has Table II's
                                        1.97 M parameters (:func:`paper_widths`), patch 28 x 120 x 120,
                                        batch 2; same spacing, so it shares nnU-Net's preprocessed data
==========  ==========================  ========================================================================

Presets keep the source plans' network class (plain U-Net or FilterNet, whose Block B kernels are derived
again for the new topology). Strides and stages always come from nnU-Net's ``get_pool_and_conv_props``; so do
the kernels, except in the ``paper`` preset (3x3x3 everywhere, as the paper's Block A).
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_filternet.errors import FilterNetError, InputError
from nnunet_filternet.plans.topology import CONVS_PER_STAGE, MAX_FEATURES_3D, nnunet_topology, stage_widths

#: preset -> plans name.
PLANS_NAMES: dict[str, str] = {
    "filternet": "nnUNetPlans_FilterNet",
    "tiny": "nnUNetPlans_tiny",
    "paper": "nnUNetPlans_paper",
}

#: Trainer suggested in the follow-up commands of each preset.
SUGGESTED_TRAINER: dict[str, str] = {
    "filternet": "nnUNetTrainerFilterNet",
    "tiny": "nnUNetTrainerFilterNet",
    "paper": "nnUNetTrainerFilterNetPaper",
}

#: The paper's Block A conv kernel along every axis.
PAPER_KERNEL_SIZE = 3
#: Table II: parameters of the paper's U-Net.
PAPER_UNET_PARAMETERS = 1.97e6
#: The paper's blocks: Conv, BN, ReLU (nnU-Net's plans name LeakyReLU).
PAPER_NONLIN = "torch.nn.ReLU"
#: Input channels and classes the paper's count refers to (one T1 image; background and five compartments).
PAPER_CHANNELS_AND_CLASSES = (1, 6)
TINY_PATCH_SIZE = (8, 48, 48)
TINY_FEATURES = (8, 16, 32, 64)
TINY_INPLANE_FACTOR = 2.0


@dataclass(frozen=True)
class PresetResult:
    """What :func:`write_preset` wrote.

    Attributes:
        plans_file: the plans JSON written.
        plans_name: its name (``-p`` / ``-plans_name`` of nnU-Net's CLIs).
        dataset_name: ``DatasetXXX_Name``.
        data_identifiers: configuration -> data identifier (folder of preprocessed data).
        to_preprocess: configurations whose preprocessed folder does not exist yet.
        trainer: trainer suggested in the follow-up commands.
    """

    plans_file: Path
    plans_name: str
    dataset_name: str
    data_identifiers: dict[str, str]
    to_preprocess: tuple[str, ...] = field(default=())
    trainer: str = "nnUNetTrainerFilterNet"

    @property
    def dataset_id(self) -> int:
        return int(self.dataset_name[7:10])

    def follow_up_commands(self) -> list[str]:
        """nnU-Net commands to run next (preprocess if needed, train, predict)."""
        d, p = self.dataset_id, self.plans_name
        config = "3d_fullres" if "3d_fullres" in self.data_identifiers else next(iter(self.data_identifiers))
        commands = []
        if self.to_preprocess:
            commands.append(f"nnUNetv2_preprocess -d {d} -plans_name {p} -c {' '.join(self.to_preprocess)}")
        commands.append(f"nnUNetv2_train {d} {config} 0 -tr {self.trainer} -p {p}")
        predict = f"nnUNetv2_predict -i INPUT_FOLDER -o OUTPUT_FOLDER -d {d} -c {config} -f 0"
        commands.append(f"{predict} -tr {self.trainer} -p {p}")
        return commands


# --- pure plans transformations -------------------------------------------------------------------------
def _architecture(source_config: dict, topology: dict, features: Sequence[int], batch_norm: bool) -> dict:
    """The source configuration's architecture with a new topology and widths (network class kept).

    For FilterNet plans the Block B kernels (zeta) are derived again from the new kernels
    (``filternet_arch_kwargs``): zeta follows the kernels' axes, so 3x3x3 kernels give zeta 7, 5, 3 on
    every axis, nnU-Net's 1x3x3 kernels zeta 1x7x7, 1x5x5.
    """
    from nnunet_filternet.training.networks import FILTERNET, plain_arch_kwargs, with_batch_norm

    architecture = copy.deepcopy(source_config["architecture"])
    n = topology["n_stages"]
    kwargs = plain_arch_kwargs(architecture["arch_kwargs"])
    kwargs.update(
        n_stages=n,
        features_per_stage=[int(f) for f in features][:n],
        kernel_sizes=topology["kernel_sizes"],
        strides=topology["strides"],
        n_conv_per_stage=[CONVS_PER_STAGE] * n,
        n_conv_per_stage_decoder=[CONVS_PER_STAGE] * (n - 1),
    )
    if batch_norm:
        kwargs = with_batch_norm(kwargs)
    if architecture["network_class_name"] == FILTERNET:
        from nnunet_filternet.network.from_plans import filternet_arch_kwargs

        kwargs = filternet_arch_kwargs(kwargs)
    architecture["arch_kwargs"] = kwargs
    return architecture


def _fullres(source: dict, source_name: str) -> dict:
    try:
        return source["configurations"]["3d_fullres"]
    except KeyError:
        raise InputError(source_name, "expected a 3d_fullres configuration (a 3D dataset), found none") from None


def tiny_spacing(spacing: Sequence[float], factor: float = TINY_INPLANE_FACTOR) -> list[float]:
    """The tiny preset's spacing (mm): in-plane axes coarsened, the slice axis kept as the data have it.

    In-plane axes are the axes finer than the coarsest one. Each is coarsened by ``factor``, but not beyond
    1/3 of the slice spacing (nnU-Net's ``ANISO_THRESHOLD``) nor ever made finer: data that nnU-Net treats as
    anisotropic stay anisotropic, and data that are less so (e.g. 2.8 x 2.8 x 7 mm) keep their spacing, so
    nnU-Net's topology (in-plane kernels at the first stages) and the edge gate's axes stay those of the
    source plans. Only isotropic spacing (all axes equal) is coarsened on every axis.

    Args:
        spacing: the source configuration's spacing (mm), nnU-Net's axis order.
        factor: in-plane coarsening factor (> 1).

    Returns:
        The new spacing, same axis order.

    Example:
        (7, 0.7, 0.7) -> (7, 1.4, 1.4); (7, 1.4, 1.4) -> (7, 2.33, 2.33); (7, 2.8, 2.8) -> unchanged;
        (1, 1, 1) -> (2, 2, 2).
    """
    from nnunetv2.configuration import ANISO_THRESHOLD

    spacing = [float(s) for s in spacing]
    coarsest = max(spacing)
    if all(math.isclose(s, coarsest, rel_tol=1e-6) for s in spacing):
        return [s * factor for s in spacing]
    ceiling = coarsest / ANISO_THRESHOLD * 0.999
    return [s if math.isclose(s, coarsest, rel_tol=1e-6) else max(s, min(s * factor, ceiling)) for s in spacing]


def tiny_plans(
    source: dict,
    plans_name: str = PLANS_NAMES["tiny"],
    patch_size: Sequence[int] = TINY_PATCH_SIZE,
    features: Sequence[int] = TINY_FEATURES,
    batch_size: int = 2,
    source_name: str = "source plans",
) -> dict:
    """``nnUNetPlans_tiny`` from nnU-Net plans: coarse, small, fast (see module doc). ``source`` is not modified."""
    config = copy.deepcopy(_fullres(source, source_name))
    old = [float(s) for s in config["spacing"]]
    new = tiny_spacing(old)
    median = [float(m) * o / n for m, o, n in zip(config["median_image_size_in_voxels"], old, new)]
    patch = [max(1, min(int(p), int(round(m)))) for p, m in zip(patch_size, median)]
    topology = nnunet_topology(new, patch)
    widths = stage_widths(topology["n_stages"], features[0], features[-1])
    config.update(
        data_identifier=f"{plans_name}_3d_fullres",
        batch_size=int(batch_size),
        patch_size=topology["patch_size"],
        median_image_size_in_voxels=median,
        spacing=new,
        architecture=_architecture(config, topology, widths, batch_norm=False),
    )
    plans = _with_configuration(source, plans_name, config)
    plans["configurations"]["2d"] = tiny_2d_configuration(config, plans_name, features)
    return plans


def tiny_2d_configuration(tiny_3d: dict, plans_name: str, features: Sequence[int] = TINY_FEATURES) -> dict:
    """The tiny preset's ``2d`` configuration: the ``3d_fullres`` one made 2d at the same voxels per step.

    Same in-plane spacing and patch (the 3d patch's in-plane part, e.g. 48 x 48 at 2.33 mm), batch = the 3d
    batch x the 3d patch's slices (2 x 8 = 16 slices: the voxels of one 3d step), widths from the same
    feature list, strides and 3 x 3 kernels from nnU-Net's ``get_pool_and_conv_props`` for the 2d patch.
    Measured on the study's cohort, it learned more per CPU-minute than the tiny ``3d_fullres``
    (docs/study.md). nnU-Net preprocesses it into ``<plans_name>_2d`` (slices keep their own spacing).

    Args:
        tiny_3d: the tiny preset's ``3d_fullres`` configuration (nnU-Net's axis order z, y, x).
        plans_name: the plans' name (prefix of the data identifier).
        features: width of the first stage doubles per stage up to the last entry.

    Returns:
        The ``2d`` configuration dict (a new object; ``tiny_3d`` is not modified).
    """
    config = copy.deepcopy(tiny_3d)
    spacing, patch = [float(s) for s in config["spacing"][1:]], [int(p) for p in config["patch_size"][1:]]
    topology = nnunet_topology(spacing, patch)
    widths = stage_widths(topology["n_stages"], features[0], features[-1])
    architecture = _architecture(config, topology, widths, batch_norm=False)
    kwargs = architecture["arch_kwargs"]  # FilterNet plans: zeta already derived from the 2d kernels
    kwargs.update(conv_op="torch.nn.modules.conv.Conv2d", norm_op=_as_2d_op(kwargs["norm_op"]))
    config.update(
        data_identifier=f"{plans_name}_2d",
        batch_size=int(tiny_3d["batch_size"]) * int(tiny_3d["patch_size"][0]),
        patch_size=topology["patch_size"],
        median_image_size_in_voxels=[float(m) for m in config["median_image_size_in_voxels"][1:]],
        spacing=spacing,
        architecture=architecture,
    )
    return config


def _as_2d_op(op: str) -> str:
    """``torch...InstanceNorm3d`` -> ``torch...InstanceNorm2d`` (norm ops named by nnU-Net's plans)."""
    if not op.endswith("3d"):
        raise FilterNetError(f"tiny 2d configuration: expected a 3d norm op in the plans, found {op!r}")
    return op[:-2] + "2d"


def unet_parameters(arch_kwargs: dict, channels_and_classes: tuple[int, int] = PAPER_CHANNELS_AND_CLASSES) -> int:
    """Parameters of the ``PlainConvUNet`` that nnU-Net builds from plans arch_kwargs (ops as strings), on no device."""
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    from nnunet_filternet.network import count_parameters
    from nnunet_filternet.training.networks import PLAIN_UNET, plain_arch_kwargs

    required = ("conv_op", "norm_op", "dropout_op", "nonlin")
    with torch.device("meta"):
        network = get_network_from_plans(
            PLAIN_UNET, plain_arch_kwargs(arch_kwargs), required, *channels_and_classes, allow_init=False
        )
    return count_parameters(network)


def paper_widths(arch_kwargs: dict, target: float = PAPER_UNET_PARAMETERS) -> list[int]:
    """Stage widths b, 2b, 4b, ... (at most 320) whose ``PlainConvUNet`` has about ``target`` parameters.

    nnU-Net's width rule (a base width doubled at every stage, capped at 320) with the base b, an integer, whose
    U-Net (the kwargs' topology, kernels and norm; 1 input channel, 6 classes, as the paper) has the parameter
    count closest to ``target``. The paper gives the count (Table II: 1.97 M) but not the widths (only its
    Fig. 3 shows them). Counts grow about as b^2, so from b = 10 on consecutive bases differ by less than the
    +-10 % band around ``target``; the paper's patch gives 4-5 stages and b = 10-19.

    Args:
        arch_kwargs: PlainConvUNet arch_kwargs (ops as strings); ``features_per_stage`` is ignored.
        target: the parameter count aimed at.

    Returns:
        One width per stage, e.g. [10, 20, 40, 80, 160] for the paper's patch at 7 x 0.7 x 0.7 mm.
    """
    n = int(arch_kwargs["n_stages"])
    best: tuple[float, list[int]] | None = None
    for base in range(1, MAX_FEATURES_3D + 1):
        widths = stage_widths(n, base, MAX_FEATURES_3D)
        count = unet_parameters({**arch_kwargs, "features_per_stage": widths})
        if best is None or abs(count - target) < best[0]:
            best = (abs(count - target), widths)
        if count > target:  # counts grow with the base: no closer one follows
            break
    return best[1]


def paper_plans(source: dict, plans_name: str = PLANS_NAMES["paper"], source_name: str = "source plans") -> dict:
    """``nnUNetPlans_paper``: the paper's network, size, patch, batch, BatchNorm and ReLU on nnU-Net's spacing.

    The paper's Block A is two 3x3x3 convs (Conv, BN, ReLU) at every scale, and zeta is 7, 5, 3 along every
    axis (its receptive-field gain of 22 voxels is "along each dimension", along z "limited by padding"). So
    every stage gets 3x3x3 kernels, where nnU-Net would convolve thick-slice data in-plane first (1x3x3); the
    FilterNet trainers derive zeta from these kernels (:func:`_architecture`). Strides and the number of
    stages stay nnU-Net's deepest topology that keeps the paper's patch unpadded (the paper does not give its
    pooling). Widths: :func:`paper_widths`, so the stock U-Net of these plans has Table II's 1.97 M parameters
    (+-10 %), as the paper's U-Net.
    """
    from nnunet_filternet.training.paper_protocol import PAPER_BATCH_SIZE, PAPER_PATCH_SIZE

    config = copy.deepcopy(_fullres(source, source_name))
    topology = nnunet_topology(config["spacing"], PAPER_PATCH_SIZE, exact=True)
    topology["kernel_sizes"] = [[PAPER_KERNEL_SIZE] * len(kernel) for kernel in topology["kernel_sizes"]]
    draft = _architecture(config, topology, [1] * topology["n_stages"], batch_norm=True)
    widths = paper_widths(draft["arch_kwargs"])
    architecture = _architecture(config, topology, widths, batch_norm=True)
    architecture["arch_kwargs"].update(nonlin=PAPER_NONLIN, nonlin_kwargs={"inplace": True})
    config.update(batch_size=PAPER_BATCH_SIZE, patch_size=topology["patch_size"], architecture=architecture)
    return _with_configuration(source, plans_name, config)


def _with_configuration(source: dict, plans_name: str, config: dict) -> dict:
    plans = copy.deepcopy(source)
    plans["plans_name"] = plans_name
    plans["configurations"] = {"3d_fullres": config}
    return plans


# --- files ----------------------------------------------------------------------------------------------
def resolve_dataset_name(dataset: str | int) -> str:
    """``DatasetXXX_Name`` from an id or a name (nnU-Net's ``maybe_convert_to_dataset_name``)."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        return str(maybe_convert_to_dataset_name(dataset))
    except (RuntimeError, ValueError) as e:
        reason = str(e).split(". ")[0]
        raise FilterNetError(
            f"cannot resolve dataset {dataset!r}: expected the id or name of a dataset in nnUNet_raw, "
            f"nnUNet_preprocessed or nnUNet_results ({reason})"
        ) from None


def preprocessed_folder(dataset_name: str) -> Path:
    root = os.environ.get("nnUNet_preprocessed")
    if not root:
        raise FilterNetError("nnUNet_preprocessed is not set; point it at nnU-Net's preprocessed folder")
    return Path(root) / dataset_name


def load_plans(dataset_name: str, plans_name: str) -> dict:
    """The plans JSON ``nnUNet_preprocessed/<dataset>/<plans_name>.json``."""
    import json

    path = preprocessed_folder(dataset_name) / f"{plans_name}.json"
    if not path.is_file():
        raise InputError(
            path, f"expected nnU-Net plans; run `nnUNetv2_plan_and_preprocess -d {dataset_name[7:10]}` first"
        )
    try:
        plans = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(path, f"expected JSON plans, found invalid JSON ({e})") from None
    except UnicodeDecodeError:
        raise InputError(path, "expected a UTF-8 JSON plans file, found other bytes") from None
    problem = plans_problem(plans)
    if problem:
        raise InputError(path, problem)
    return plans


#: Keys of a configuration that the presets read.
CONFIGURATION_KEYS = ("spacing", "patch_size", "median_image_size_in_voxels", "architecture", "batch_size")


def plans_problem(plans, configuration: str = "3d_fullres", keys: tuple = CONFIGURATION_KEYS) -> str | None:
    """What makes ``plans`` unlike nnU-Net's plans, or None: ``configurations`` must map names to objects, and
    ``configuration`` (when present: the one read) must hold ``keys`` (by default those the presets read)."""
    if not isinstance(plans, dict):
        return f"expected nnU-Net plans (a JSON object), found a {type(plans).__name__}"
    configurations = plans.get("configurations")
    if not isinstance(configurations, dict) or not configurations:
        found = "none" if configurations is None else f"a {type(configurations).__name__}"
        return f"expected 'configurations' to map configuration names to objects, found {found}"
    for name, config in configurations.items():
        if not isinstance(config, dict):
            return f"configuration {name!r}: expected an object, found a {type(config).__name__}"
        if name != configuration or "inherits_from" in config:
            continue  # not the one read; or nnU-Net's cascade configurations: only a parent and overrides
        missing = [k for k in keys if k not in config]
        if missing:
            return f"configuration {name!r}: expected the keys {list(keys)}, missing {missing}"
        if not isinstance(config["architecture"], dict) or not isinstance(
            config["architecture"].get("arch_kwargs"), dict
        ):
            return f"configuration {name!r}: expected 'architecture' with 'arch_kwargs' (nnU-Net v2 plans)"
        problem = _values_problem({k: config[k] for k in keys})
        if problem:
            return f"configuration {name!r}: {problem}"
    return None


def _positive_numbers(value, integers: bool) -> bool:
    """Whether ``value`` is a list of 2 or 3 finite numbers > 0 (whole numbers when ``integers``; no booleans)."""
    return (
        isinstance(value, list)
        and len(value) in (2, 3)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in value)
        and (not integers or all(float(v).is_integer() for v in value))
    )


def _values_problem(config: dict) -> str | None:
    """What is wrong with the values of one configuration's spacing, sizes and batch (those of them it holds)."""
    sizes = {"spacing": (False, "voxel sizes in mm"), "patch_size": (True, "voxel counts"),
             "median_image_size_in_voxels": (False, "voxel counts")}  # fmt: skip
    for key, (integers, what) in sizes.items():
        if key in config and not _positive_numbers(config[key], integers):
            return f"expected {key!r} to be 2 or 3 {what} > 0, found {config[key]!r}"
    lengths = {key: len(config[key]) for key in sizes if key in config}
    if len(set(lengths.values())) > 1:
        return f"expected {', '.join(map(repr, lengths))} of one length, found {lengths}"
    batch = config.get("batch_size", 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        return f"expected 'batch_size' to be a whole number >= 1, found {batch!r}"
    return None


@contextlib.contextmanager
def _at_least_one_planning_thread():
    """nnU-Net's planner sets torch's thread count to ``nnUNet_n_proc_DA``, which fails for 0 (set for CPU runs)."""
    saved = os.environ.get("nnUNet_n_proc_DA")
    if saved is not None and saved.strip() == "0":
        os.environ["nnUNet_n_proc_DA"] = "1"
    try:
        yield
    finally:
        if saved is not None:
            os.environ["nnUNet_n_proc_DA"] = saved


def run_filternet_planner(dataset_name: str, source_plans: str, gpu_memory_target_gb: float = 8.0) -> dict:
    """Run :class:`FilterNetPlanner` (nnU-Net's planning API); it writes ``nnUNetPlans_FilterNet.json``."""
    from nnunet_filternet.plans.planner import FILTERNET_PLANS, FilterNetPlanner

    folder = preprocessed_folder(dataset_name)
    if not (folder / "dataset_fingerprint.json").is_file():
        raise InputError(folder / "dataset_fingerprint.json", "expected nnU-Net's fingerprint; run nnU-Net's planning")
    raw = Path(os.environ.get("nnUNet_raw", "")) / dataset_name / "dataset.json"
    if not os.environ.get("nnUNet_raw") or not raw.is_file():
        raise InputError(raw, "expected the raw dataset (nnU-Net's planner reads nnUNet_raw); set nnUNet_raw")
    with contextlib.redirect_stdout(io.StringIO()), _at_least_one_planning_thread():
        planner = FilterNetPlanner(
            dataset_name, gpu_memory_target_gb, plans_name=FILTERNET_PLANS, source_plans_name=source_plans
        )
        return planner.plan_experiment()


def write_preset(
    dataset: str | int, preset: str, source_plans: str = "nnUNetPlans", gpu_memory_target_gb: float = 8.0
) -> PresetResult:
    """Write a preset's plans for a dataset into ``nnUNet_preprocessed/<dataset>/``.

    Args:
        dataset: nnU-Net dataset id or name.
        preset: ``filternet``, ``tiny`` or ``paper``.
        source_plans: plans the preset starts from (nnU-Net's ``nnUNetPlans`` by default).
        gpu_memory_target_gb: GPU memory the ``filternet`` preset plans for (nnU-Net's default 8 GB).

    Returns:
        What was written, with the follow-up commands.
    """
    from nnunet_filternet.utils.atomic import write_json
    from nnunet_filternet.utils.output_guard import refuse_inputs_as_outputs

    if preset not in PLANS_NAMES:
        raise FilterNetError(f"unknown preset {preset!r}; expected one of {', '.join(PLANS_NAMES)}")
    dataset_name = resolve_dataset_name(dataset)
    source = load_plans(dataset_name, source_plans)
    plans_name = PLANS_NAMES[preset]
    plans_file = preprocessed_folder(dataset_name) / f"{plans_name}.json"
    source_name = str(preprocessed_folder(dataset_name) / f"{source_plans}.json")
    refuse_inputs_as_outputs({source_name: "the source plans (--source-plans)"}, files=[plans_file])
    if preset == "filternet":
        plans = run_filternet_planner(dataset_name, source_plans, gpu_memory_target_gb)
    else:
        build = tiny_plans if preset == "tiny" else paper_plans
        plans = build(source, plans_name, source_name=source_name)
        write_json(plans_file, plans)
    identifiers = {
        name: config["data_identifier"]
        for name, config in plans["configurations"].items()
        if "data_identifier" in config
    }
    missing = tuple(n for n, i in identifiers.items() if not (preprocessed_folder(dataset_name) / i).is_dir())
    return PresetResult(plans_file, plans_name, dataset_name, identifiers, missing, SUGGESTED_TRAINER[preset])
