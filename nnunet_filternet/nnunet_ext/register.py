"""Run at interpreter start-up by ``nnunet_filternet.pth``: make our trainers findable by nnU-Net."""

from __future__ import annotations

from nnunet_filternet.nnunet_ext import add_to_environment

add_to_environment()
