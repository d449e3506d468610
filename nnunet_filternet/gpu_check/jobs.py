"""Subprocesses of the GPU check that run side by side: started, watched, timed out, and killed as a group.

Each job runs in its own session (process group), so a timeout ends the job together with the workers it
started itself (nnU-Net's data-augmentation processes, inductor's compile workers) and nothing else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: Seconds between the "still running" lines while waiting.
HEARTBEAT_S = 30.0


@dataclass
class Job:
    """One command, its output files and its time limit.

    Attributes:
        name: step name in the check's report.
        argv: the command.
        log: file receiving stderr (and stdout unless ``stdout`` is given).
        timeout_s: seconds from its start after which it is killed.
        stdout: file receiving stdout alone (e.g. a report the command prints), or None.
    """

    name: str
    argv: Sequence[str]
    log: Path
    timeout_s: float
    stdout: Path | None = None
    returncode: int | None = field(default=None, init=False)
    timed_out: bool = field(default=False, init=False)
    seconds: float = field(default=0.0, init=False)
    _process: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _start: float = field(default=0.0, init=False, repr=False)
    _files: list = field(default_factory=list, init=False, repr=False)

    def start(self, env: dict[str, str]) -> Job:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log, "w", encoding="utf-8")  # noqa: SIM115  (closed in _finish)
        out = open(self.stdout, "w", encoding="utf-8") if self.stdout else log  # noqa: SIM115
        self._files = [log] if out is log else [log, out]
        self._start = time.perf_counter()
        self._process = subprocess.Popen(
            list(map(str, self.argv)), env=env, stdout=out, stderr=log, start_new_session=True
        )
        return self

    @property
    def running(self) -> bool:
        return self._process is not None and self.returncode is None

    def poll(self) -> bool:
        """Whether the job has ended (killing it first when it ran past its time limit)."""
        if not self.running:
            return True
        code = self._process.poll()
        self.seconds = time.perf_counter() - self._start
        if code is None and self.seconds > self.timeout_s:
            self.timed_out = True
            self.kill()
            code = self._process.wait()
        if code is not None:
            self._finish(code)
        return code is not None

    def kill(self) -> None:
        """End the job's process group: SIGTERM, then SIGKILL after 10 s."""
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 0.0)):
            try:
                os.killpg(self._process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self._process.wait(timeout=grace or None)
                return
            except subprocess.TimeoutExpired:
                continue

    def _finish(self, code: int) -> None:
        self.returncode = code
        for f in self._files:
            f.close()

    def tail(self, lines: int = 12) -> str:
        """The last lines of the job's log."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


def wait_for(jobs: Sequence[Job], heartbeat_s: float = HEARTBEAT_S) -> None:
    """Wait until every job has ended or been killed at its time limit; print which are running now and then."""
    last = time.perf_counter()
    try:
        while not all([job.poll() for job in jobs]):
            time.sleep(0.5)
            if time.perf_counter() - last >= heartbeat_s:
                last = time.perf_counter()
                running = ", ".join(f"{j.name} ({j.seconds:.0f} s)" for j in jobs if j.running)
                print(f"  ... still running: {running}", flush=True)
    except BaseException:  # Ctrl-C or an error here: leave no job behind
        for job in jobs:
            if job.running:
                job.kill()
                job.poll()
        raise
