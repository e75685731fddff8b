"""Every user-caused failure shares one base class, while existing ``except`` clauses keep working."""

import pytest

from spockmip.errors import (
    DataError,
    DeviceError,
    MetricError,
    OutputError,
    RunError,
    SettingsError,
    SpockmipError,
    WeightsError,
)


@pytest.mark.parametrize(
    ("error", "other_base"),
    [
        (SettingsError, ValueError),
        (DataError, ValueError),
        (OutputError, ValueError),
        (WeightsError, ValueError),
        (RunError, RuntimeError),
        (MetricError, RuntimeError),
        (DeviceError, Exception),
    ],
)
def test_user_errors_are_spockmip_errors_and_keep_their_old_base(
    error: type[Exception], other_base: type[Exception]
) -> None:
    assert issubclass(error, SpockmipError) and issubclass(error, other_base)
