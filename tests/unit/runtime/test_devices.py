"""A requested device is refused in one line naming the option before any work, when it cannot be used."""

import pytest
import torch

from spockmip.errors import DeviceError, SpockmipError
from spockmip.runtime.devices import select_device


def test_the_cpu_is_always_available() -> None:
    assert select_device("cpu") == torch.device("cpu")


def test_an_unknown_device_names_the_option_and_the_choices() -> None:
    with pytest.raises(DeviceError) as caught:
        select_device("banana")
    message = str(caught.value)
    assert message.startswith("--device banana: unknown device") and "cuda:N" in message
    assert "\n" not in message and isinstance(caught.value, SpockmipError)


def test_a_device_type_spockmip_does_not_run_on_is_unknown() -> None:
    with pytest.raises(DeviceError, match=r"^device: meta: unknown device"):
        select_device("meta", option="device:")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("requested", ["cuda", "cuda:3"])
def test_cuda_on_a_machine_without_it_says_so(requested: str) -> None:
    with pytest.raises(DeviceError) as caught:
        select_device(requested)
    message = str(caught.value)
    assert message.startswith(f"--device {requested}: CUDA is not available on this machine (torch ")
    assert torch.__version__ in message and "\n" not in message


def test_a_gpu_index_beyond_the_machine_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # This machine may have no GPU: the count torch reports is what the check relies on, so it is set.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(
        DeviceError, match=r"^--device cuda:3: no such GPU; this machine has 2 \(cuda:0 to cuda:1\)$"
    ):
        select_device("cuda:3")
    assert select_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without MPS")
def test_mps_on_a_machine_without_it_says_so() -> None:
    with pytest.raises(
        DeviceError, match=r"^--device mps: MPS \(Apple GPU\) is not available on this machine$"
    ):
        select_device("mps")
