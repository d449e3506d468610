"""Packaging hook: ship ``nnunet_filternet.pth`` at the top of site-packages.

nnU-Net v2.8 finds trainers outside its own package only through the ``nnUNet_extTrainer``
environment variable. The ``.pth`` file runs ``nnunet_filternet.nnunet_ext.register`` at interpreter
start-up, which appends our trainer folder to that variable (keeping whatever the user set), so that
``nnUNetv2_train ... -tr nnUNetTrainerFilterNet`` works in a fresh shell right after ``pip install``.
Everything else is declared in ``pyproject.toml``.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH_NAME = "nnunet_filternet.pth"
PTH_LINE = "import nnunet_filternet.nnunet_ext.register\n"


class build_py_with_pth(build_py):
    """Also write the start-up ``.pth`` file into the wheel's root (= site-packages)."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / PTH_NAME
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(PTH_LINE)

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / PTH_NAME)]


class editable_wheel_with_pth(editable_wheel):
    """``pip install -e``: put the same ``.pth`` file into the editable wheel's root."""

    def _install_namespaces(self, installation_dir, pth_prefix):
        super()._install_namespaces(installation_dir, pth_prefix)
        Path(installation_dir, PTH_NAME).write_text(PTH_LINE)


setup(cmdclass={"build_py": build_py_with_pth, "editable_wheel": editable_wheel_with_pth})
