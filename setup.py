"""Packaging hooks: the package layout, and ``nnunet_filternet.pth`` at the top of site-packages.

The repository keeps ``plans/`` and ``dataset_conversion/`` at its top (a reader finds the plans presets and the
conversion where the project's layout says), but they install under the project's namespace, as
``nnunet_filternet.plans`` and ``nnunet_filternet.dataset_conversion``: generic top-level names such as ``plans``
would shadow, or be shadowed by, any other package of that name on a user's path (:data:`MAPPED`).

nnU-Net v2.8 finds trainers outside its own package only through the ``nnUNet_extTrainer``
environment variable. The ``.pth`` file runs ``nnunet_filternet.nnunet_ext.register`` at interpreter
start-up, which appends our trainer folder to that variable (keeping whatever the user set), so that
``nnUNetv2_train ... -tr nnUNetTrainerFilterNet`` works in a fresh shell right after ``pip install``.
Everything else is declared in ``pyproject.toml``.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

#: Installed package -> its folder in the repository (besides ``nnunet_filternet/`` itself).
MAPPED = {"nnunet_filternet.plans": "plans", "nnunet_filternet.dataset_conversion": "dataset_conversion"}

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


def packages() -> list[str]:
    """``nnunet_filternet`` and its subpackages, and the mapped folders' packages under their installed names."""
    found = find_packages(include=["nnunet_filternet", "nnunet_filternet.*"])
    for name, folder in MAPPED.items():
        found += [name, *(f"{name}.{sub}" for sub in find_packages(folder))]
    return found


setup(
    packages=packages(),
    package_dir=MAPPED,
    package_data={"nnunet_filternet.edge.native": ["*.c"]},  # the fused CPU kernel's source, compiled at first use
    cmdclass={"build_py": build_py_with_pth, "editable_wheel": editable_wheel_with_pth},
)
