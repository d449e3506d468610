"""The floors of the package (/work/shared/LAYERS.md) hold for the statistics and the stages built on it.

Every ``import`` of ``nnunet_filternet.<folder>`` in the package's files, lazy ones inside functions included,
read with :mod:`ast`. The statistics sit below ``compare/``, which sits below ``report/``; none of these folders
imports one above it or beside it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nnunet_filternet

PACKAGE = Path(nnunet_filternet.__file__).parent

#: Floor of each folder (or top-level module) of the package, from LAYERS.md: a folder imports only lower floors.
FLOORS = {
    "labels": 1, "errors": 1,
    "network": 2, "edge": 2, "utils": 2,
    "metrics": 3, "statistics": 3, "training": 3, "phantom": 3,
    "dataset_conversion": 4, "plans": 4, "nnunet_ext": 4,
    "compare": 5, "quantify": 5, "qc": 5,
    "report": 6,
    "pipeline": 7,
    "bench": 8, "gpu_check": 8,
    "cli": 9,
}  # fmt: skip
#: The folders this test guards.
CHECKED = ("statistics", "metrics", "compare", "report", "qc")


def imports_of(folder: str, package: Path = PACKAGE) -> dict[str, set[str]]:
    """Package folder imported -> the files of ``folder`` that import it (absolute imports of nnunet_filternet)."""
    found: dict[str, set[str]] = {}
    for path in sorted((package / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                parts = node.module.split(".")
                if parts[0] == "nnunet_filternet":
                    names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name.split(".")[1] for a in node.names if a.name.startswith("nnunet_filternet.")]
            for name in names:
                if name != folder:
                    found.setdefault(name, set()).add(path.relative_to(package).as_posix())
    return found


def test_the_checked_folders_import_only_lower_floors():
    for folder in CHECKED:
        for imported, files in imports_of(folder).items():
            assert FLOORS[imported] < FLOORS[folder], f"{folder} (floor {FLOORS[folder]}) imports {imported} " \
                f"(floor {FLOORS[imported]}) in {sorted(files)}"  # fmt: skip


def test_compare_does_not_import_report_and_no_pair_imports_each_other():
    graph = {folder: set(imports_of(folder)) for folder in FLOORS if (PACKAGE / folder).is_dir()}
    assert "report" not in graph["compare"]
    assert graph["statistics"] == set()  # numpy and scipy only
    for folder in CHECKED:
        mutual = [other for other in graph[folder] if folder in graph.get(other, set())]
        assert not mutual, f"{folder} and {mutual} import each other"


def test_the_checker_sees_lazy_imports(tmp_path):
    """A mutant: an upward import inside a function is found (so the tests above can fail)."""
    (tmp_path / "compare").mkdir()
    (tmp_path / "compare" / "x.py").write_text(
        "def f():\n    from nnunet_filternet.report.report import write_report\n"
    )
    (tmp_path / "compare" / "y.py").write_text("from nnunet_filternet import report\nfrom . import x\n")
    assert imports_of("compare", tmp_path) == {"report": {"compare/x.py", "compare/y.py"}}
