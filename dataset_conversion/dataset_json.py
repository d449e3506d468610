"""nnU-Net's ``dataset.json`` for a leg dataset, with FilterNet's edge weights W."""

from __future__ import annotations

import tempfile
from pathlib import Path

from nnunet_filternet.dataset_conversion.unchanged import replace_if_changed
from nnunet_filternet.labels import EDGE_WEIGHTS_KEY, LABELS, PAPER_EDGE_WEIGHTS

FILE_ENDING = ".nii.gz"


def write_dataset_json(dataset_dir: Path, num_training: int, name: str, extra: dict | None = None) -> Path:
    """Write ``dataset_dir/dataset.json`` atomically (unless unchanged) with nnU-Net's own generator.

    Channel 0 is "T1" (nnU-Net then z-scores each image), labels are background/TA/TP/Sol/Gas/PL, and
    the paper's edge weights W = [0, .2, .2, .15, .15, .3] sit under :data:`~nnunet_filternet.labels.
    EDGE_WEIGHTS_KEY` for the FilterNet trainers. ``extra`` adds keys (e.g. the legs kept without labels).
    """
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    dataset_dir = Path(dataset_dir)
    with tempfile.TemporaryDirectory(prefix=".dataset_json.", dir=dataset_dir) as tmp:
        generate_dataset_json(
            tmp,
            channel_names={0: "T1"},
            labels=dict(LABELS),
            num_training_cases=num_training,
            file_ending=FILE_ENDING,
            dataset_name=name,
            description="Single calf legs (right legs mirrored), converted by `filternet convert`; see legs.json",
            license="see the source scans",
            converted_by="filternet convert",
            **{EDGE_WEIGHTS_KEY: list(PAPER_EDGE_WEIGHTS)},
            **(extra or {}),
        )
        replace_if_changed(Path(tmp) / "dataset.json", dataset_dir / "dataset.json")
    return dataset_dir / "dataset.json"
