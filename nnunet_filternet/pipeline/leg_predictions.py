"""``filternet predict``'s leg predictions: nnU-Net's predictor, and reuse of earlier predictions keyed on all
that made them.

nnU-Net skips a case whose output file exists (``overwrite=False``, its ``--continue_prediction``), whatever
model or input made it. So before it runs, :func:`keep_reusable_predictions` deletes from our own predictions
folder every prediction that was not made by THIS model from THIS leg image, using a ledger
``.legs/predictions.json`` beside it::

    {"schema": ..., "model": <sha256 of model_key()>, "cases": {"<case>": "<sha256 of the leg image>"}}

The model key (:func:`model_key`) holds the program and nnU-Net versions, the model folder, the content of its
``plans.json``, ``dataset.json`` and of every fold's checkpoint used, the folds, the checkpoint name, test-time
mirroring and the device. The ledger is written BEFORE nnU-Net runs (it describes what any prediction appearing
in the folder from then on is made from), so an interrupted run resumes with the predictions it finished; a
prediction left half-written by a kill is found incomplete and predicted again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from nnunet_filternet.errors import InputError

SCHEMA = "filternet-predictions/1"
#: nnU-Net predictor settings used by ``filternet predict`` (part of the model key).
TILE_STEP_SIZE = 0.5
USE_GAUSSIAN = True


def model_key(model: Path, folds: Sequence[int], checkpoint: str, device: str, disable_tta: bool, snap=None):
    """(sha256 of the key, snapshot of the model's files): everything about the model that decides a prediction.

    The snapshot (:func:`nnunet_filternet.utils.cache.snapshot`) is taken before nnU-Net reads the files;
    ``snapshot.holds()`` afterwards says whether they are still the files that were hashed. Pass the snapshot of
    an earlier call as ``snap`` to key the same files on another device without hashing them again.
    """
    import nnunetv2
    import torch

    from nnunet_filternet.utils.cache import program, snapshot

    files = [model / "plans.json", model / "dataset.json", *(model / f"fold_{f}" / checkpoint for f in folds)]
    snap = snapshot(files) if snap is None else snap
    key = {
        "program": program(),
        "nnunetv2": getattr(nnunetv2, "__version__", _distribution_version("nnunetv2")),
        "torch": torch.__version__,
        "model": str(model.resolve()),
        "files": snap.key,
        "folds": [int(f) for f in folds],
        "checkpoint": checkpoint,
        "mirroring": not disable_tta,
        "device": device,
        "tile_step_size": TILE_STEP_SIZE,
        "gaussian": USE_GAUSSIAN,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest(), snap


def _distribution_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _complete(path: Path) -> bool:
    from nnunet_filternet.utils.image_io import check_complete

    try:
        check_complete(path, "leg prediction")
    except InputError:
        return False
    return True


def keep_reusable_predictions(legs_in: Path, legs_pred: Path, ledger: Path, key: str, cases: Sequence[str]) -> list:
    """Delete every file of ``legs_pred`` that is not a complete prediction of a current case made by the model
    ``key`` from the current leg image; record the ledger; return the cases nnU-Net still has to predict.

    Args:
        legs_in: the leg images ``<case>_0000.nii.gz`` (``filternet convert``'s inference output).
        legs_pred: our predictions folder (created; only we write there).
        ledger: the ledger file (module docstring).
        key: :func:`model_key`'s hash.
        cases: the leg cases of this run.
    """
    from nnunet_filternet.utils.atomic import write_json
    from nnunet_filternet.utils.cache import snapshot

    legs = {case: snapshot([legs_in / f"{case}_0000.nii.gz"]).key[0][2] for case in cases}
    try:
        old = json.loads(ledger.read_text(encoding="utf-8"))
        made = old["cases"] if old.get("schema") == SCHEMA and old.get("model") == key else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        made = {}
    legs_pred.mkdir(parents=True, exist_ok=True)
    for path in sorted(legs_pred.iterdir()):
        case = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else None
        reusable = path.is_file() and case in legs and made.get(case) == legs[case] and _complete(path)
        if not reusable:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    write_json(ledger, {"schema": SCHEMA, "model": key, "cases": legs})
    return [c for c in cases if not (legs_pred / f"{c}.nii.gz").is_file()]


def forget_predictions(ledger: Path) -> None:
    """Drop the ledger: no prediction in the folder is reused by the next run."""
    ledger.unlink(missing_ok=True)


def _first_detail(error: Exception) -> str:
    """The first informative line of a (multi-line) error, e.g. torch's 'size mismatch for ...'."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    detail = next((line for line in lines if "mismatch" in line or "Missing key" in line), lines[0] if lines else "")
    return detail if len(detail) <= 300 else detail[:300] + " ..."


def load_predictor(
    model: Path, folds: Sequence[int], checkpoint: str, device: str, disable_tta: bool, qc_folder: Path | None = None
):
    """nnU-Net's predictor for the model, after checking that every fold's weights fit the network its plans build.

    With ``qc_folder``, the predictor is :class:`~nnunet_filternet.qc.predictor.AgreementPredictor`, which also
    writes the folds' agreement of every leg it predicts to ``qc_folder/<case>.json``.

    Raises:
        InputError: a checkpoint whose weights belong to another network (size mismatch, missing or unexpected
            layers), or that nnU-Net cannot build a network for; one line, naming the checkpoint.
    """
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    settings = dict(
        tile_step_size=TILE_STEP_SIZE, use_gaussian=USE_GAUSSIAN, use_mirroring=not disable_tta,
        device=torch.device(device), verbose=False, verbose_preprocessing=False, allow_tqdm=False,
    )  # fmt: skip
    if qc_folder is None:
        predictor = nnUNetPredictor(**settings)
    else:
        from nnunet_filternet.qc.predictor import AgreementPredictor

        predictor = AgreementPredictor(qc_folder, **settings)
    first = model / f"fold_{folds[0]}" / checkpoint
    try:
        predictor.initialize_from_trained_model_folder(str(model), use_folds=tuple(folds), checkpoint_name=checkpoint)
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise InputError(first, _mismatch(model, e)) from None
    for fold, params in zip(folds, predictor.list_of_parameters):
        try:
            predictor.network.load_state_dict(params)
        except (RuntimeError, KeyError, TypeError) as e:
            raise InputError(model / f"fold_{fold}" / checkpoint, _mismatch(model, e)) from None
    predictor.network.load_state_dict(predictor.list_of_parameters[0])
    return predictor


def _mismatch(model: Path, error: Exception) -> str:
    return (
        f"expected the weights of the network that {model / 'plans.json'} describes, found another network "
        f"({type(error).__name__}: {_first_detail(error)}); the checkpoint belongs to another model"
    )


def run_nnunet(predictor, legs_in: Path, legs_pred: Path, device: str) -> None:
    """nnU-Net's prediction of every leg image in ``legs_in`` without a prediction in ``legs_pred``."""
    n = 1 if device == "cpu" else 3
    predictor.predict_from_files(
        str(legs_in), str(legs_pred), save_probabilities=False, overwrite=False,
        num_processes_preprocessing=n, num_processes_segmentation_export=n,
    )  # fmt: skip
