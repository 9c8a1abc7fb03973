"""Project-wide test settings.

Tests use tiny networks, for which one torch thread is faster than two contended ones
(measured: a smoke search step took seconds with 2 threads on a busy 2-core machine and
milliseconds with 1), and a headless matplotlib backend.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)


# -- the device of the tests marked `device` ---------------------------------------------
# Tests marked `device` run on CPU by default and on the device named by
# `--emodarts-device` or EMODARTS_TEST_DEVICE (e.g. cuda); tools/gpu_check.py runs them on
# CUDA (`pytest -m device`). They check the CUDA-specific paths (mixed precision and loss
# scaling, pinned-memory loaders, cuDNN recurrences, the search and retraining steps), and
# the same code paths' decisions on CPU.

import pytest  # noqa: E402

DEVICE_ENV = "EMODARTS_TEST_DEVICE"


def pytest_addoption(parser):
    parser.addoption("--emodarts-device", default=None,
                     help=f"device for the tests marked `device` (cpu, cuda, cuda:N); default ${DEVICE_ENV} or cpu")


def pytest_configure(config):
    config.addinivalue_line("markers", "device: runs on the device of --emodarts-device / $EMODARTS_TEST_DEVICE "
                                       "(cpu by default); tools/gpu_check.py runs these on CUDA")
    name = config.getoption("--emodarts-device") or os.environ.get(DEVICE_ENV) or "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise pytest.UsageError(f"tests were asked to run on {name!r} but CUDA is not available")
    config._emodarts_device = torch.device(name)


@pytest.fixture
def target_device(request) -> torch.device:
    """The device of a test marked `device`."""
    return request.config._emodarts_device


@pytest.fixture
def float64():
    """Float64 as torch's default dtype for the test, for exact references (restored after)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)
