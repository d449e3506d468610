"""Our text files are UTF-8 whatever the process locale.

SimpleITK's DICOM writer (GDCM) switches the process locale to "C" (ASCII) when it writes slices with
position tags, so any later ``open()`` without an encoding would fail on "±" or tqdm's "█".
"""

from __future__ import annotations

import locale

from nnunet_filternet.utils.atomic import write_json, write_text


def test_text_writes_are_utf8_under_the_c_locale(tmp_path):
    locale.setlocale(locale.LC_ALL, "C")  # restored by the autouse fixture in conftest
    assert locale.getpreferredencoding(False).lower().replace("-", "") != "utf8"  # the trap is armed
    write_text(tmp_path / "table.md", "| TA | 91.3 ± 1.0 |")
    write_json(tmp_path / "x.json", {"bar": "█"})
    assert (tmp_path / "table.md").read_bytes() == "| TA | 91.3 ± 1.0 |".encode()
    assert (tmp_path / "x.json").read_text(encoding="utf-8").count("bar") == 1
