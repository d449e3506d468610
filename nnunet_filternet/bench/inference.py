"""Sliding-window inference time of one leg, with nnU-Net's own predictor.

``nnUNetPredictor.predict_sliding_window_return_logits`` runs on a network instance given through
``manual_initialization`` (as nnU-Net's trainer does for its final validation): Gaussian-weighted tiles with
half-patch steps, autocast on CUDA, results on the device when it is a GPU, and with mirroring the
average over all flips of nnU-Net's default 3D mirror axes (8 forward passes per tile in 3D, 4 in 2D).
The network comes from the trainer's ``build_network_architecture`` without deep supervision, as
``nnUNetPredictor.initialize_from_trained_model_folder`` builds it (the gate is training-only, so FilterNet
predicts exactly like BUNet).
"""

from __future__ import annotations

import torch

from nnunet_filternet.bench.models import ModelSpec
from nnunet_filternet.bench.plans import BenchSetup
from nnunet_filternet.bench.timing import time_calls


class SlidingWindow:
    """nnU-Net's predictor around one model's network, predicting a random leg-sized volume.

    Args:
        spec: the model.
        setup: shared configuration; ``setup.inference_shape`` is the predicted volume.
        device: where the network runs.
        seed: seed of the random image.
    """

    def __init__(self, spec: ModelSpec, setup: BenchSetup, device: torch.device, seed: int = 0):
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        self.device = device
        self.predictor = nnUNetPredictor(
            tile_step_size=0.5,
            use_gaussian=True,
            use_mirroring=True,
            perform_everything_on_device=device.type == "cuda",
            device=device,
            verbose=False,
            allow_tqdm=False,
        )
        manager = setup.configuration_manager_for(spec.variant)
        network = spec.trainer_class().build_network_architecture(
            setup.plans_manager, manager, setup.num_input_channels, setup.num_classes, enable_deep_supervision=False
        )
        mirror_axes = tuple(range(len(setup.patch_size)))  # nnU-Net's default: every spatial axis
        self.predictor.manual_initialization(
            network, setup.plans_manager, manager, None, setup.dataset_json, spec.trainer, mirror_axes
        )
        self.compiled = self.predictor.network is not network  # nnU-Net compiles when nnUNet_compile is true
        generator = torch.Generator().manual_seed(seed)
        self.image = torch.randn((setup.num_input_channels, *setup.inference_shape), generator=generator)

    def predict(self, mirroring: bool) -> torch.Tensor:
        """Logits C *inference_shape of the whole volume."""
        self.predictor.use_mirroring = mirroring
        return self.predictor.predict_sliding_window_return_logits(self.image)

    def time(self, mirroring: bool, repeats: int) -> list[float]:
        """Seconds per prediction of the volume, ``repeats`` times (call :meth:`predict` once before to warm up)."""
        return time_calls(lambda: self.predict(mirroring), repeats, self.device)
