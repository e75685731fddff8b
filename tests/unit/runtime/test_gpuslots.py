"""A GPU job claims a GPU no other job holds, before CUDA starts; the lock dies with the process.

Jobs are real processes; the GPUs are those of a stand-in ``nvidia-smi`` put first on their PATH, so the
claim lists them, locks them and sets CUDA_VISIBLE_DEVICES as it does on a GPU machine.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest
from paths import ROOT

from spockmip.runtime.gpuslots import Gpu, claims_gpu, list_gpus, parse_gpus

UUIDS = [f"GPU-{index:08x}-aaaa-bbbb-cccc-dddddddddddd" for index in range(3)]
# Seconds a test waits for a job's line before it fails: far beyond a claim's few milliseconds.
PATIENCE = 10.0

# A job as the claim sees it: it claims for the device in argv[1] ("unset" for None), looking again every
# argv[2] seconds, prints CUDA_VISIBLE_DEVICES, then holds its claim until its stdin closes.
CLAIMING_JOB = """
import logging, os, sys
from spockmip.runtime.gpuslots import claim_gpu
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
claim_gpu(None if sys.argv[1] == "unset" else sys.argv[1], poll_seconds=float(sys.argv[2]))
print(os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"), flush=True)
sys.stdin.readline()
"""


def fake_nvidia_smi(folder: Path, uuids: list[str]) -> Path:
    """An ``nvidia-smi`` in ``folder`` that answers the claim's query with ``uuids`` (indices 0, 1, ...)
    as the real one formats it, and refuses any other query."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = " ".join(f"'{index}, {uuid}'" for index, uuid in enumerate(uuids))
    script = folder / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$*" = "--query-gpu=index,uuid --format=csv,noheader" ] || { echo "bad query: $*" >&2; exit 2; }\n'
        f"printf '%s\\n' {lines}\n"
    )
    script.chmod(0o755)
    return folder


def job_environment(tmp_path: Path, gpus: int, **variables: str) -> dict[str, str]:
    """The environment of a job on a machine with ``gpus`` GPUs (the stand-in nvidia-smi first on PATH,
    locks under ``tmp_path``) that no scheduler assigned any, plus ``variables``."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name != "CUDA_VISIBLE_DEVICES" and not name.startswith("SLURM_")
    }
    bin_folder = fake_nvidia_smi(tmp_path / "bin", UUIDS[:gpus])
    environment["PATH"] = f"{bin_folder}{os.pathsep}{environment.get('PATH', '')}"
    environment["PYTHONPATH"] = str(ROOT / "src")
    environment["SPOCKMIP_GPU_LOCK_DIR"] = str(tmp_path / "locks")
    return environment | variables


def launch(environment: dict[str, str], device: str = "unset", poll: float = 0.05) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLAIMING_JOB, device, str(poll)],
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def next_line(stream: IO[str], patience: float = PATIENCE) -> str | None:
    """The next line ``stream`` gives within ``patience`` seconds, else None (a test that waits forever
    for a job would never fail)."""
    ready, _, _ = select.select([stream], [], [], patience)
    return stream.readline().rstrip("\n") if ready else None


def finish(job: subprocess.Popen) -> str:
    """End ``job`` (it releases its claim when its stdin closes); its stderr. A job still waiting for a
    GPU by then is killed, so a failing test leaves no process behind."""
    try:
        _, stderr = job.communicate(timeout=PATIENCE)
    except subprocess.TimeoutExpired:
        job.kill()
        job.communicate()
        raise
    assert job.returncode == 0, stderr
    return stderr


def test_two_jobs_started_together_get_different_gpus(tmp_path: Path) -> None:
    environment = job_environment(tmp_path, gpus=2)
    jobs = [launch(environment), launch(environment)]
    visible = [next_line(job.stdout) for job in jobs]
    logs = [finish(job) for job in jobs]
    assert sorted(visible) == UUIDS[:2]
    for uuid, log in zip(visible, logs, strict=True):
        index = UUIDS.index(uuid)
        lock = tmp_path / "locks" / f"{uuid}.lock"
        assert f"INFO claimed GPU {index} ({uuid}): CUDA_VISIBLE_DEVICES set to it; lock {lock} held" in log
    # Every user's jobs can use the folder and the files, whatever the umask of the job that made them.
    assert stat.S_IMODE((tmp_path / "locks").stat().st_mode) == 0o1777
    assert {stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "locks").iterdir()} == {0o666}


def test_the_gpu_of_a_killed_job_is_free_again(tmp_path: Path) -> None:
    environment = job_environment(tmp_path, gpus=1)
    holder = launch(environment)
    assert next_line(holder.stdout) == UUIDS[0]
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=PATIENCE)
    # Looking again only after a minute: the GPU is had at once, or the test runs out of patience.
    successor = launch(environment, poll=60)
    assert next_line(successor.stdout) == UUIDS[0]
    assert "waiting" not in finish(successor)


def test_a_job_finding_every_gpu_claimed_waits_until_one_is_free(tmp_path: Path) -> None:
    environment = job_environment(tmp_path, gpus=1)
    holder = launch(environment)
    assert next_line(holder.stdout) == UUIDS[0]
    waiter = launch(environment)
    line = next_line(waiter.stderr)
    assert (
        line
        == f"INFO all 1 GPU(s) are claimed by other jobs (locks in {tmp_path / 'locks'}); waiting for one"
    )
    assert next_line(waiter.stdout, patience=0.5) is None  # still waiting, after ten looks
    finish(holder)
    assert next_line(waiter.stdout) == UUIDS[0]
    assert "waiting" not in finish(waiter)  # said once, above


@pytest.mark.parametrize(
    ("variables", "visible", "logged"),
    [
        (
            {"CUDA_VISIBLE_DEVICES": UUIDS[1]},
            UUIDS[1],
            f"CUDA_VISIBLE_DEVICES={UUIDS[1]}, from the environment",
        ),
        ({"CUDA_VISIBLE_DEVICES": ""}, "", "CUDA_VISIBLE_DEVICES=, from the environment"),
        (
            {"SLURM_JOB_ID": "4242", "CUDA_VISIBLE_DEVICES": "1"},
            "1",
            "CUDA_VISIBLE_DEVICES=1, from SLURM job 4242",
        ),
        ({"SLURM_JOB_ID": "4242"}, "<unset>", "WARNING SLURM job 4242 set no CUDA_VISIBLE_DEVICES"),
    ],
)
def test_gpus_a_scheduler_or_the_user_chose_are_left_alone(
    tmp_path: Path, variables: dict[str, str], visible: str, logged: str
) -> None:
    job = launch(job_environment(tmp_path, gpus=3, **variables))
    assert next_line(job.stdout) == visible
    assert logged in finish(job)
    assert not (tmp_path / "locks").exists()


@pytest.mark.parametrize("kind", ["under a file", "read-only"])
def test_a_folder_where_no_lock_can_be_made_warns_and_the_job_runs_unclaimed(
    tmp_path: Path, kind: str
) -> None:
    if kind == "under a file":
        (tmp_path / "a-file").write_text("")
        folder, failed, reason = tmp_path / "a-file" / "locks", tmp_path / "a-file", "File exists"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        folder = tmp_path / "read-only"
        folder.mkdir(mode=0o555)
        failed, reason = folder / f"{UUIDS[0]}.lock", "Permission denied"
    job = launch(job_environment(tmp_path, gpus=2, SPOCKMIP_GPU_LOCK_DIR=str(folder)))
    assert next_line(job.stdout) == "<unset>"
    log = finish(job)
    assert f"WARNING {folder}: no GPU lock can be made there ({reason}: {failed}); no GPU claimed" in log


def test_a_cpu_job_claims_nothing(tmp_path: Path) -> None:
    job = launch(job_environment(tmp_path, gpus=2), device="cpu")
    assert next_line(job.stdout) == "<unset>"
    finish(job)
    assert not (tmp_path / "locks").exists()


@pytest.mark.parametrize(("device", "claims"), [(None, True), ("cuda", True), ("cpu", False), ("mps", False)])
def test_only_jobs_on_the_default_cuda_device_claim_one(device: str | None, claims: bool) -> None:
    assert claims_gpu(device) is claims


def test_a_job_that_names_its_gpu_keeps_it() -> None:
    # cuda:1 after a claim would be the second of the one GPU CUDA sees: no such device.
    assert not claims_gpu("cuda:1") and not claims_gpu("cuda:0")


def test_the_gpus_are_listed_in_the_driver_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(fake_nvidia_smi(tmp_path, UUIDS[:2])))
    assert list_gpus() == [Gpu(0, UUIDS[0]), Gpu(1, UUIDS[1])]


def test_a_machine_without_nvidia_smi_has_no_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert list_gpus() == []


def test_a_failing_nvidia_smi_is_reported_and_means_no_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    script = tmp_path / "nvidia-smi"
    script.write_text('#!/bin/sh\necho "NVIDIA-SMI has failed: driver not loaded" >&2\nexit 9\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        assert list_gpus() == []
    assert "nvidia-smi failed (NVIDIA-SMI has failed: driver not loaded); no GPU claimed" in caplog.text


def test_a_line_that_is_not_a_gpu_is_refused() -> None:
    # A UUID names a lock file: anything else in its place (a path, an error text) must not become one.
    assert parse_gpus(f"0, {UUIDS[0]}\n\n") == [Gpu(0, UUIDS[0])]
    for line in ("0, ../../etc/passwd", "No devices were found", f"x, {UUIDS[0]}"):
        with pytest.raises(ValueError, match="not an index and a GPU UUID"):
            parse_gpus(line)


# A workflow script as Snakemake runs it, ended at the first use of its inputs or parameters (just after
# its start-up). A handler on the claim's logger notes, as the claim logs, whether torch is imported yet.
WORKFLOW_JOB = """
import json, logging, os, runpy, sys
from types import SimpleNamespace

class StartedUp(Exception):
    pass

class EndsTheJob:
    def __getattr__(self, name):
        raise StartedUp(name)

at_claim = {}

class AtClaim(logging.Handler):
    def emit(self, record):
        torch = sys.modules.get("torch")
        at_claim["torch imported"] = torch is not None
        at_claim["cuda initialised"] = torch is not None and torch.cuda.is_initialized()
        at_claim["message"] = record.getMessage()

logging.getLogger("spockmip.runtime.gpuslots").addHandler(AtClaim())
job = EndsTheJob()
snakemake = SimpleNamespace(log=[sys.argv[2]], threads=1, input=job, output=job, params=job)
try:
    runpy.run_path(sys.argv[1], init_globals={"snakemake": snakemake})
except StartedUp:
    pass
print(json.dumps({"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), **at_claim}))
"""


@pytest.mark.parametrize(
    ("script", "claims"), [("train.py", True), ("predict.py", True), ("evaluate.py", False)]
)
def test_a_workflow_gpu_job_claims_before_anything_imports_torch(
    tmp_path: Path, script: str, claims: bool
) -> None:
    log = tmp_path / "job.log"
    done = subprocess.run(
        [sys.executable, "-c", WORKFLOW_JOB, str(ROOT / "workflow" / "scripts" / script), str(log)],
        env=job_environment(tmp_path, gpus=2),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(done.stdout)
    if not claims:
        assert seen == {"visible": None}
        return
    assert seen["visible"] == UUIDS[0] and seen["message"].startswith(f"claimed GPU 0 ({UUIDS[0]})")
    # Nothing before the claim imports torch, so nothing can have started CUDA. With a CPU-only torch
    # is_initialized() is always False: the import is what a machine without CUDA can check.
    assert not seen["torch imported"] and not seen["cuda initialised"]
    assert f"INFO claimed GPU 0 ({UUIDS[0]})" in log.read_text()  # in the job's log


@pytest.mark.parametrize(
    ("device", "claims"), [([], True), (["--device", "cuda"], True), (["--device", "cpu"], False)]
)
def test_spockmip_predict_claims_a_gpu_unless_told_the_cpu(
    tmp_path: Path, device: list[str], claims: bool
) -> None:
    # The output is refused (not a NIfTI name) after the claim, before any model is loaded.
    command = "import sys; from spockmip.cli import main; sys.exit(main(sys.argv[1:]))"
    arguments = [
        "predict",
        "-w",
        str(tmp_path / "m.pt"),
        "-i",
        str(tmp_path / "a.nii.gz"),
        "-o",
        str(tmp_path / "a.txt"),
    ]
    done = subprocess.run(
        [sys.executable, "-c", command, *arguments, *device],
        env=job_environment(tmp_path, gpus=2),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "spockmip predict: error:" in done.stderr
    assert (f"claimed GPU 0 ({UUIDS[0]})" in done.stderr) is claims
