"""Shared pytest set-up: one torch thread per test process (the machine has few cores and runs trainings)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def single_torch_thread():
    torch.set_num_threads(1)
    yield
