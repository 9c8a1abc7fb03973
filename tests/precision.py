"""Float32 comparisons of a fast path with torch that hold on any CPU.

Two float32 results of one computation differ by rounding, and how much depends on the
summation order of the machine's kernels (AVX2 and AVX-512 builds of oneDNN sum a weight
gradient's entries in different orders). So a fixed tolerance tuned on one CPU fails on
the next. Instead both float32 results are compared with a float64 reference of the same
computation, and the fast path must be within a small factor of torch's own error: a
bound that scales with the rounding the machine actually does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

FLOAT32_EPS = torch.finfo(torch.float32).eps


def max_error(result: torch.Tensor, reference: torch.Tensor) -> float:
    """Greatest absolute difference from the float64 reference, computed in float64."""
    return (result.detach().double() - reference.detach().double()).abs().max().item()


def assert_as_accurate_as_torch(ours: torch.Tensor | Sequence[torch.Tensor],
                                torchs: torch.Tensor | Sequence[torch.Tensor],
                                reference: torch.Tensor | Sequence[torch.Tensor],
                                factor: float = 2.0, terms: int = 1, what: str = "") -> None:
    """Each of `ours` (float32) is within `factor` times the error of `torchs` (float32,
    torch's own computation) from `reference` (float64).

    Where torch happens to be (nearly) exact, the rounding that float32 summation of
    `terms` products may do stands in for its error: sqrt(terms) rounding units of the
    reference's largest value, the typical error of summing that many terms one by one.
    Then a result that summed in another order still passes, and a wrong one (an error of
    the order of the values themselves) still fails."""
    if isinstance(ours, torch.Tensor):
        ours, torchs, reference = [ours], [torchs], [reference]
    assert len(ours) == len(torchs) == len(reference)
    for i, (a, t, r) in enumerate(zip(ours, torchs, reference)):
        assert a.shape == t.shape == r.shape, (what, i, a.shape, t.shape, r.shape)
        assert r.dtype == torch.float64, "the reference must be computed in float64"
        rounding = FLOAT32_EPS * math.sqrt(terms) * r.detach().abs().max().item()
        ours_err, torch_err = max_error(a, r), max_error(t, r)
        assert ours_err <= factor * max(torch_err, rounding), (
            f"{what}[{i}]: error {ours_err:.3g} from the float64 reference, torch's own {torch_err:.3g} "
            f"(allowed {factor} x {max(torch_err, rounding):.3g})")
