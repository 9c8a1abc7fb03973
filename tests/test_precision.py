"""The float32-against-float64 comparison the fast-path tests share (tests/precision.py)."""

import pytest
import torch

from precision import assert_as_accurate_as_torch


def _sums(n=4096):
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, n, generator=gen), torch.randn(8, n, generator=gen)
    return a, b, (a.double() * b.double()).sum(1)


def test_another_summation_order_passes():
    a, b, reference = _sums()
    torchs = (a * b).sum(1)
    reordered = (a * b).flip(1).reshape(8, 64, -1).sum(2).sum(1)
    assert_as_accurate_as_torch(reordered, torchs, reference, terms=a.shape[1])


def test_a_wrong_result_fails_and_names_what():
    a, b, reference = _sums()
    torchs = (a * b).sum(1)
    wrong = (a * b)[:, 1:].sum(1)  # one product left out
    with pytest.raises(AssertionError, match="left out"):
        assert_as_accurate_as_torch(wrong, torchs, reference, terms=a.shape[1], what="left out")


def test_the_reference_must_be_float64():
    a, b, _ = _sums()
    with pytest.raises(AssertionError, match="float64"):
        assert_as_accurate_as_torch((a * b).sum(1), (a * b).sum(1), (a * b).sum(1))
