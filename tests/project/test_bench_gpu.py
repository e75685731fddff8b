"""benchmarks/bench_gpu.py works before it meets a GPU: every code path at a tiny size on the CPU."""

import subprocess
import sys

import pytest
import torch
from paths import ROOT

SCRIPT = ROOT / "benchmarks" / "bench_gpu.py"


def _bench(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, timeout=900
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the benchmark runs for real")
def test_without_a_gpu_it_stops_at_once_with_one_line() -> None:
    result = _bench()
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "no CUDA device" in result.stderr and "--smoke" in result.stderr


def test_smoke_run_measures_every_row_under_every_setting() -> None:
    result = _bench("--smoke")
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    assert "FAILED" not in output and "skipped" not in output
    settings = ("default layout", "default layout + compile", "channels_last", "channels_last + compile")
    for setting in settings:
        rows = ("step_mip", "step_nomip", "step_unet", "step_ds6", "step_cldice", "step_skelrec")
        for row in (*rows, "mip_share", "skelrec", "cldice"):
            assert f"{row:10s} [{setting}]:" in output, (row, setting)
    # The loop and inference run in the library's own layout, which on a CPU is the default one.
    for setting in settings[:2]:
        assert f"loop       [{setting}]:" in output and f"inference  [{setting}]:" in output
    assert output.count("inference  ours / MONAI") == 2 and output.count("ours / network alone") == 2
    assert "of peak" in output and "card: none (CPU smoke run)" in output and "cuDNN" in output
