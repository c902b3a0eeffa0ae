"""Model tests run tiny models: one intra-op thread is faster than two on the shared, busy CPUs
(thread hand-offs dominate tiny matmuls; measured 0.08 s vs 0.65-4 s for a 12-token generate)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
