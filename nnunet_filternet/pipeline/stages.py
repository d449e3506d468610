"""Resumable stages: a JSON state file records which stages finished, so a rerun skips them.

A stage is marked done only after its function returned, so an interrupt (Ctrl-C, a killed job) leaves
the stage unfinished and the next run repeats it; each stage is itself written to resume or redo its
work safely (atomic outputs, nnU-Net's ``--c``). Every resumable run of the package keeps its state here: the
demo's stages (:meth:`StageRunner.run`) and ``filternet gpu-check``'s steps (:meth:`StageRunner.mark_done`, with
what each step found).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.utils.atomic import write_json


class StageRunner:
    """Runs named stages once, recording them in ``state_file``.

    Args:
        state_file: JSON file holding ``{"settings": {...}, "done": {stage: seconds}, "details": {stage: text}}``
            (``details`` only for stages recorded with one).
        settings: the run's settings; a rerun with different settings in the same folder is refused,
            because finished stages would not match them.
    """

    def __init__(self, state_file: str | Path, settings: dict[str, Any]):
        self.state_file = Path(state_file)
        self.settings = json.loads(json.dumps(settings))  # normalise tuples -> lists
        self.state = {"settings": self.settings, "done": {}}
        if self.state_file.exists():
            old = json.loads(self.state_file.read_text(encoding="utf-8"))
            if old.get("settings") != self.settings:
                raise FilterNetError(
                    f"{self.state_file}: this work folder was started with other settings "
                    f"({_diff(old.get('settings', {}), self.settings)}); use another --workdir or the same settings"
                )
            self.state = {**old, "done": old.get("done", {})}

    def done(self, name: str) -> bool:
        """Whether stage ``name`` finished in an earlier run."""
        return name in self.state["done"]

    def seconds(self, name: str) -> float:
        """How long stage ``name`` took when it finished."""
        return self.state["done"][name]

    def detail(self, name: str) -> str:
        """What stage ``name`` reported when it finished (``""`` when nothing was recorded)."""
        return self.state.get("details", {}).get(name, "")

    def mark_done(self, name: str, seconds: float, detail: str = "") -> None:
        """Record stage ``name`` as finished, run by the caller (e.g. a background job), with what it reported."""
        self.state["done"][name] = round(seconds, 1)
        if detail:
            self.state.setdefault("details", {})[name] = detail
        write_json(self.state_file, self.state)

    def run(self, index: int, total: int, name: str, description: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` as stage ``index``/``total`` unless it is already done; print what happens."""
        header = f"[{index}/{total}] {description}"
        if self.done(name):
            print(f"{header}: done in an earlier run, skipped", flush=True)
            return None
        print(f"{header} ...", flush=True)
        start = time.perf_counter()
        result = fn()
        self.mark_done(name, time.perf_counter() - start)
        print(f"{header}: finished in {self.seconds(name):.1f} s", flush=True)
        sys.stdout.flush()
        return result


def _diff(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(changed) or "unknown difference"
