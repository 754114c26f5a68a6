"""Process.params: dtype of plain numbers, tensors kept as given, range checks."""

import pytest
import torch

from forward.processes import get_process


def test_plain_numbers_take_the_requested_dtype():
    process = get_process("ttbar")
    assert process.params({"alpha_s": 0.12})["alpha_s"].dtype == torch.float64
    assert process.params({"alpha_s": 0.12}, dtype=torch.float32)["alpha_s"].dtype == torch.float32


def test_tensors_keep_dtype_and_graph():
    process = get_process("drell-yan")
    g = torch.tensor(1.5, dtype=torch.float32, requires_grad=True)
    out = process.params({"gzp": g})["gzp"]
    assert out.dtype == torch.float32 and out.requires_grad


def test_out_of_range_and_unknown_names():
    process = get_process("drell-yan")
    with pytest.raises(ValueError, match="mzp"):
        process.params({"mzp": 100.0})
    with pytest.raises(ValueError, match="unknown parameter"):
        process.params({"nope": 1.0})
