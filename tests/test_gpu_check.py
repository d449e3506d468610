"""``filternet gpu-check``: its dry run on the CPU end to end, resuming, its refusals, and its parts that judge.

The dry run is the GPU check with nnU-Net's CPU rules (no compile, no AMP) and the CPU stand-ins of the device
checks, here at its smallest: 4 subjects of 128 x 128 x 12, the tiny plans, 1 epoch of 1 iteration, and only the
FLOP part of the benchmark. So a first GPU run exercises only what needs the GPU.
"""

from __future__ import annotations

import json
import sys
import time

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.e2e  # whole nnU-Net runs in subprocesses: `make test-fast` skips them

DRY_RUN = (
    "gpu-check", "--device", "cpu", "--plans", "nnUNetPlans_tiny", "--small", "--epochs", "1", "--iterations", "1",
    "--bench-args", "--quick --parts flops --models FilterNet",
)  # fmt: skip
STEPS = (
    "environment", "bench", "phantom", "convert", "plan", "budget-trainers", "train:nnUNetTrainerFilterNet",
    "train:nnUNetTrainer",
    "device-checks", "logs", "predict",
)  # fmt: skip


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gpu_check")
    result = run_cli(*DRY_RUN, "--workdir", workdir, timeout=1200)
    return workdir, result


def _status(stdout: str) -> dict[str, str]:
    """Step -> PASS/FAIL/SKIP from the summary lines after ``summary:``."""
    lines = stdout.split("\nsummary:\n", 1)[-1].splitlines()
    return {line.split()[1]: line.split()[0] for line in lines if line[:6] in ("PASS  ", "FAIL  ", "SKIP  ")}


def test_dry_run_passes_every_step(dry_run):
    workdir, result = dry_run
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert _status(result.stdout) == dict.fromkeys(STEPS, "PASS")
    assert "PASS: every step" in (workdir / "gpu_check.txt").read_text()
    assert "edge gate lines, sigma 1 -> 1.0000" in result.stdout  # sigma moved, as the logs step reports
    for check in ("amp", "placement", "compile"):
        for trainer in ("nnUNetTrainerFilterNet", "nnUNetTrainerUNetF"):
            assert f"{check} {trainer}" in result.stdout
    assert "Targets:" in (workdir / "bench.md").read_text()
    state = json.loads((workdir / "gpu_check_state.json").read_text())  # the pipeline's StageRunner keeps it
    assert sorted(state["done"]) == sorted(STEPS) and "sigma 1 -> " in state["details"]["logs"]
    assert not (workdir / "demo_state.json").exists()  # the demo's own state is the demo's


def test_rerun_skips_passed_steps_and_other_settings_are_refused(dry_run):
    workdir, _ = dry_run
    again = run_cli(*DRY_RUN, "--workdir", workdir)
    assert again.returncode == 0, again.stdout[-3000:]
    assert again.stdout.count("(earlier run)") == len(STEPS)
    other = run_cli(*DRY_RUN, "--epochs", "2", "--workdir", workdir)
    assert other.returncode == 2 and "gpu_check_state.json" in other.stderr and "other settings" in other.stderr


def test_logs_check_demands_compile_and_amp_on_cuda(dry_run):
    """The dry run's logs (CPU: no compile, no AMP) fail the CUDA criteria, naming what is missing."""
    from nnunet_filternet.gpu_check.runner import STOCK_TRAINER, StepFailed, check_training_records

    workdir, _ = dry_run
    results = workdir / "nnUNet_results" / "Dataset501_FilterNetPhantom"
    fold_dirs = {
        t: results / f"{t}_1epoch_1iters_2val__nnUNetPlans_tiny__3d_fullres" / "fold_0"
        for t in ("nnUNetTrainerFilterNet", STOCK_TRAINER)
    }
    assert "sigma 1 -> " in check_training_records(fold_dirs, "nnUNetTrainerFilterNet", "cpu", 1)
    with pytest.raises(StepFailed, match="Using torch.compile"):
        check_training_records(fold_dirs, "nnUNetTrainerFilterNet", "cuda", 1)
    with pytest.raises(StepFailed, match="expected edge gate lines with lambda"):
        check_training_records(fold_dirs, "nnUNetTrainerFilterNet", "cpu", 3)  # 3 epochs expected, 1 logged


def test_cuda_without_a_gpu_exits_2(monkeypatch, capsys, tmp_path):
    import torch

    from nnunet_filternet.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["gpu-check", "--device", "cuda", "--workdir", str(tmp_path)]) == 2
    assert "expected a CUDA GPU" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before writing anything


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_job_past_its_time_limit_is_killed_with_its_children(tmp_path):
    from nnunet_filternet.gpu_check.jobs import Job, wait_for

    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    job = Job("sleeper", [sys.executable, "-c", script], tmp_path / "sleeper.log", timeout_s=3)
    fast = Job("fast", [sys.executable, "-c", "print('done')"], tmp_path / "fast.log", timeout_s=30)
    start = time.perf_counter()
    wait_for([job.start({}), fast.start({})], heartbeat_s=60)
    assert job.timed_out and job.returncode != 0 and time.perf_counter() - start < 20
    assert fast.returncode == 0 and not fast.timed_out and fast.tail() == "done"
    grandchild = int(job.tail())
    deadline = time.perf_counter() + 5
    while _alive(grandchild) and time.perf_counter() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild)


def test_a_failed_step_skips_what_needs_it_and_runs_again_next_time(tmp_path, capsys):
    from nnunet_filternet.gpu_check.runner import CheckSettings, GpuCheck, StepFailed

    def broken():
        raise StepFailed("expected x, found y")

    check = GpuCheck(tmp_path, CheckSettings(device="cpu"))
    check.step("a", broken)
    check.step("b", lambda: "ran", needs=("a",))
    check.step("c", lambda: "fine")
    assert [(r.name, r.status, r.detail) for r in check.results] == [
        ("a", "FAIL", "expected x, found y"),
        ("b", "SKIP", "needs a"),
        ("c", "PASS", "fine"),
    ]
    again = GpuCheck(tmp_path, CheckSettings(device="cpu"))
    again.step("c", lambda: pytest.fail("a step that passed ran again"))
    again.step("a", lambda: "fixed")
    assert [(r.name, r.status, r.detail) for r in again.results] == [("c", "PASS", "fine"), ("a", "PASS", "fixed")]
    assert "(earlier run)" in capsys.readouterr().out


def test_the_check_is_a_list_of_steps_over_the_demo(tmp_path):
    """Training arguments, plans, dataset and environment come from the pipeline's Demo; nothing is derived here."""
    from nnunet_filternet.gpu_check.runner import CheckSettings, GpuCheck
    from nnunet_filternet.pipeline import nnunet_runs

    settings = CheckSettings(device="cpu", plans_preset="tiny", da_workers=0)
    check = GpuCheck(tmp_path, settings)
    assert [s.name for s in check.steps()] == list(STEPS)
    demo = check.demo
    assert demo.env["nnUNet_n_proc_DA"] == "0" and demo.env["nnUNet_results"] == str(tmp_path / "nnUNet_results")
    train = next(s for s in check.steps() if s.name == "train:nnUNetTrainerFilterNet").job()
    args = demo.train_args("nnUNetTrainerFilterNet", 0, device="cpu")
    assert list(train.argv) == [*nnunet_runs.command("nnUNetv2_train"), *map(str, args)]
    assert "-p" in train.argv and train.argv[train.argv.index("-p") + 1] == demo.plans == "nnUNetPlans_tiny"
    checks = next(s for s in check.steps() if s.name == "device-checks").job()
    assert checks.argv[checks.argv.index("--dataset") + 1] == demo.dataset


def test_a_step_waits_for_the_running_jobs_only_when_it_needs_one(tmp_path):
    """A job that waits for a file the next (free) step writes: the free step must not wait for the job."""
    from nnunet_filternet.gpu_check.jobs import Job
    from nnunet_filternet.gpu_check.runner import CheckSettings, GpuCheck, Step

    go, done = tmp_path / "go", tmp_path / "done"
    script = (
        "import pathlib, time\n"
        f"go, done = pathlib.Path({str(go)!r}), pathlib.Path({str(done)!r})\n"
        "while not go.exists():\n    time.sleep(0.05)\n"
        "done.write_text('x')\n"
    )
    seen = {}

    def free():
        seen["free"] = done.exists()
        go.write_text("x")

    def after():
        seen["after"] = done.exists()
        return "saw the job's file"

    check = GpuCheck(tmp_path, CheckSettings(device="cpu"))
    check._run(
        [
            Step("job", job=lambda: Job("job", [sys.executable, "-c", script], tmp_path / "job.log", 20), check=str),
            Step("free", run=free),
            Step("after", run=after, needs=("job",)),
        ]
    )
    assert seen == {"free": False, "after": True}
    assert [(r.name, r.status) for r in check.results] == [("free", "PASS"), ("job", "PASS"), ("after", "PASS")]
