"""Writes that leave a file alone when its content would not change (so reruns touch nothing)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from nnunet_filternet.utils.atomic import write_text


def write_text_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` atomically unless ``path`` already holds it. Returns True if written."""
    path = Path(path)
    if path.is_file() and path.read_bytes() == text.encode("utf-8"):
        return False
    write_text(path, text)
    return True


def write_json_if_changed(path: Path, obj) -> bool:
    """:func:`write_text_if_changed` of ``obj`` as indented JSON."""
    return write_text_if_changed(path, json.dumps(obj, indent=2) + "\n")


def replace_if_changed(new: Path, target: Path) -> bool:
    """Move file ``new`` onto ``target`` (atomic) unless both hold the same bytes; ``new`` is consumed."""
    new, target = Path(new), Path(target)
    if target.is_file() and target.read_bytes() == new.read_bytes():
        new.unlink()
        return False
    os.replace(new, target)
    return True
