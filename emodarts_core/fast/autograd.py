"""What the custom autograd Functions of `emodarts_core.fast` share: exact double backward.

Each Function's backward is written out for speed. Under `create_graph` (the second-order
architect's exact reference differentiates twice) it instead returns the gradients of the
same value written with differentiable torch ops, so double backward stays exact.
"""

from __future__ import annotations

import torch


def graph_grads(out: torch.Tensor, grad: torch.Tensor, *inputs: tuple[torch.Tensor, bool]) -> list:
    """Double backward of a custom Function: the gradients of `out` (the same value written
    with differentiable ops) for each (tensor, needed) pair, None where not needed, kept in
    the graph (`create_graph`) so that they can be differentiated again."""
    wanted = [t for t, need in inputs if need]
    grads = iter(torch.autograd.grad(out, wanted, grad, create_graph=True) if wanted else ())
    return [next(grads) if need else None for _, need in inputs]


__all__ = ["graph_grads"]
