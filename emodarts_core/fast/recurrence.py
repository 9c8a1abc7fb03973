"""Several tanh RNNs that read the same input, run as one batched recurrence (CPU).

A SeqNN edge of the emoDARTS search space holds several unidirectional tanh RNN
candidates, all reading the edge's input: `rnn_1`..`rnn_4` (10 layers), and in the "dot"
attention form also `rnn_att_1`, `rnn_att_2` (13 layers; the paper form's RNNs are
bidirectional and run as they are).  torch runs each `nn.RNN` layer on CPU as a loop over
time steps of small autograd ops, so each layer costs 32 steps of per-op overhead
forward and backward, for very little arithmetic.

`stacked_tanh_rnn` runs layer l of every candidate that has one as a single recurrence
batched over the candidates: the first layers' input projections are one matrix product
(they share the input), and the recurrence (`TanhRecurrence`) is one autograd node whose
backward is written out (backpropagation through time), two kernels per time step
forward and three backward.  The values and gradients are those of the `nn.RNN` modules
(to float rounding); their parameters are read where they are, so state dicts,
optimisers and `torch.func.functional_call` see no difference.

Double backward is exact: under `create_graph` the backward is written with differentiable
ops (on the saved outputs, which autograd differentiates through this node again), so a
double-backward reference of second-order DARTS sees the same derivatives as through
`nn.RNN`. Without `create_graph` it runs the in-place loop. `fast.cells.FastSeqMixedOp` runs it;
the plain form (`space.cells.SeqMixedOp`) runs torch's `nn.RNN` modules.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class TanhRecurrence(torch.autograd.Function):
    """h_t = tanh(z_t + h_{t-1} W_g^T), h_{-1} = 0, for G independent recurrences at once.

    Time-major: `z` [T, G, B, d] holds the input projections plus both biases, `w_hh`
    [G, d, d] the recurrent weights; returns h [T, G, B, d], so that each step reads and
    writes contiguous [G, B, d] blocks.  The backward is backpropagation through time from
    the saved outputs: dL/dz_t = (dL/dh_t + dL/dz_{t+1} W_g) * (1 - h_t^2).
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, w_hh: torch.Tensor) -> torch.Tensor:
        z = z.contiguous()
        h = torch.empty_like(z)
        w_t = w_hh.transpose(1, 2).contiguous()  # a transposed operand slows bmm by half
        torch.tanh(z[0], out=h[0])
        for t in range(1, z.shape[0]):
            torch.baddbmm(z[t], h[t - 1], w_t, out=h[t])
            h[t].tanh_()
        ctx.save_for_backward(h, w_hh)
        return h

    @staticmethod
    def backward(ctx, grad_h: torch.Tensor):
        h, w_hh = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: the same sums as differentiable ops
            return _differentiable_backward(h, w_hh, grad_h, ctx.needs_input_grad[1])
        slope = 1.0 - h * h  # tanh'(z_t) = 1 - h_t^2
        grad_z = torch.empty_like(h)
        carried = None  # dL/dh_t through h_{t+1}
        for t in range(h.shape[0] - 1, -1, -1):
            g = grad_h[t] if carried is None else grad_h[t] + carried
            torch.mul(g, slope[t], out=grad_z[t])
            if t:
                carried = torch.bmm(grad_z[t], w_hh)
        grad_w = torch.einsum("tgbi,tgbj->gij", grad_z[1:], h[:-1]) if ctx.needs_input_grad[1] else None
        return grad_z, grad_w


def _differentiable_backward(h: torch.Tensor, w_hh: torch.Tensor, grad_h: torch.Tensor, need_w: bool):
    """`TanhRecurrence.backward` without in-place writes, so that autograd can differentiate
    it (double backward): through `grad_h`, `w_hh` and the saved outputs `h`."""
    slope = 1.0 - h * h
    steps: list[torch.Tensor] = []
    carried = None
    for t in range(h.shape[0] - 1, -1, -1):
        g = grad_h[t] if carried is None else grad_h[t] + carried
        steps.append(g * slope[t])
        if t:
            carried = torch.bmm(steps[-1], w_hh)
    grad_z = torch.stack(steps[::-1])
    grad_w = torch.einsum("tgbi,tgbj->gij", grad_z[1:], h[:-1]) if need_w else None
    return grad_z, grad_w


def stackable(rnn: nn.Module | None) -> bool:
    """Whether `rnn` is an `nn.RNN` that `stacked_tanh_rnn` computes exactly: tanh,
    batch-first, one direction, biases, square layers, no dropout between layers in training."""
    return (type(rnn) is nn.RNN and rnn.nonlinearity == "tanh" and rnn.batch_first and not rnn.bidirectional
            and rnn.bias and rnn.input_size == rnn.hidden_size and (rnn.dropout == 0 or not rnn.training))


def stacked_tanh_rnn(x: torch.Tensor, rnns: list[nn.RNN]) -> list[torch.Tensor]:
    """`[rnn(x)[0] for rnn in rnns]` for `stackable` RNNs of one width, as one batched
    recurrence per layer depth.  x: [B, T, d]; each output [B, T, d]."""
    B, T, d = x.shape
    outputs: list[torch.Tensor | None] = [None] * len(rnns)
    below: dict[int, torch.Tensor] = {}  # candidate -> its previous layer's output [T, B, d]
    for layer in range(max(r.num_layers for r in rnns)):
        active = [k for k, r in enumerate(rnns) if r.num_layers > layer]
        G = len(active)

        def stacked(name):
            return torch.stack([getattr(rnns[k], f"{name}_l{layer}") for k in active])

        w_ih, w_hh = stacked("weight_ih"), stacked("weight_hh")
        bias = stacked("bias_ih") + stacked("bias_hh")  # [G, d]
        if layer == 0:  # one product for all candidates: they read the same x
            rows = x.transpose(0, 1).reshape(T * B, d)
            z = torch.addmm(bias.reshape(G * d), rows, w_ih.reshape(G * d, d).t()).view(T, B, G, d).transpose(1, 2)
        else:
            rows = torch.stack([below[k] for k in active]).view(G, T * B, d)
            z = torch.baddbmm(bias.unsqueeze(1), rows, w_ih.transpose(1, 2)).view(G, T, B, d).transpose(0, 1)
        h = TanhRecurrence.apply(z, w_hh)
        for k, h_k in zip(active, h.unbind(1)):
            below[k] = h_k
            if rnns[k].num_layers == layer + 1:
                outputs[k] = h_k.transpose(0, 1)
    return outputs


__all__ = ["TanhRecurrence", "stackable", "stacked_tanh_rnn"]
