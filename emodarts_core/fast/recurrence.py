"""Several tanh RNNs that read the same input, run as one batched recurrence (CPU).

A SeqNN edge of the emoDARTS search space holds several tanh RNN candidates, all reading
the edge's input: `rnn_1`..`rnn_4` (10 one-way layers) and `rnn_att_1`, `rnn_att_2` (3
layers, two-way in the paper's attention form, with dropout between `rnn_att_2`'s two;
one-way in the "dot" form). torch runs each `nn.RNN` layer on CPU as a loop over time
steps of small operations per direction, so each layer costs T steps of per-call overhead
forward and backward, for very little arithmetic.

`stacked_tanh_rnn` runs layer l of every candidate that has one, each direction, as a single
recurrence batched over the candidates (a backward direction on its time-reversed input):
the first layers' input projections are one matrix product (they share the input), and the
recurrence (`TanhRecurrence`) is one autograd node whose backward is written out
(backpropagation through time), two kernels per time step forward and three backward.
The values and gradients are those of the `nn.RNN` modules (to float rounding), and
dropout between layers draws the masks torch's kernel draws; the parameters are read where
they are, so state dicts, optimisers and `torch.func.functional_call` see no difference.

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
        slope = torch.mul(h, h).neg_().add_(1.0)  # tanh'(z_t) = 1 - h_t^2, in one buffer
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
    batch-first, biases, square first layer; one direction or two, with or without dropout
    between its layers (`draws_dropout`)."""
    return (type(rnn) is nn.RNN and rnn.nonlinearity == "tanh" and rnn.batch_first and rnn.bias
            and rnn.input_size == rnn.hidden_size and rnn.proj_size == 0)


def draws_dropout(rnn: nn.RNN) -> bool:
    """Whether running `rnn` draws random dropout masks (between its layers, in training)."""
    return rnn.dropout > 0 and rnn.training and rnn.num_layers > 1


def stacked_tanh_rnn(x: torch.Tensor, rnns: list[nn.RNN]) -> list[torch.Tensor]:
    """`[rnn(x)[0] for rnn in rnns]` for `stackable` RNNs of one width, as one batched
    recurrence per layer depth.  x: [B, T, d]; each output [B, T, d], or [B, T, 2d] for a
    bidirectional one (forward outputs, then backward ones, as `nn.RNN`).

    A backward direction is the same recurrence run on the time-reversed projections, its
    outputs reversed back. Between the layers of an RNN with dropout (in training) the
    layer's output, time-major as torch's own kernel holds it, gets `torch.dropout`, the
    call torch's kernel makes, so with the same random state the masks are the same. At
    most one of `rnns` may draw masks: with two, the depth-by-depth order would draw
    them in another order than running the RNNs one after the other.
    """
    if sum(draws_dropout(r) for r in rnns) > 1:
        raise ValueError("stacked_tanh_rnn: at most one of the RNNs may draw dropout masks")
    B, T, d = x.shape
    outputs: list[torch.Tensor | None] = [None] * len(rnns)
    below: dict[int, torch.Tensor] = {}  # candidate -> its previous layer's output [T, B, d or 2d]
    for layer in range(max(r.num_layers for r in rnns)):
        active = [k for k, r in enumerate(rnns) if r.num_layers > layer]
        one_way = [k for k in active if not rnns[k].bidirectional]
        two_way = [k for k in active if rnns[k].bidirectional]
        # one recurrence per direction ("stream"): the one-way RNNs, the two-way ones'
        # forward directions, then their backward ones (which read 2d values above layer 0)
        streams = [(k, "") for k in one_way + two_way] + [(k, "_reverse") for k in two_way]
        G = len(streams)

        def stacked(name, group=streams):
            return torch.stack([getattr(rnns[k], f"{name}_l{layer}{suffix}") for k, suffix in group])

        w_hh = stacked("weight_hh")
        bias = stacked("bias_ih") + stacked("bias_hh")  # [G, d]
        if layer == 0:  # one product for all streams: they read the same x
            rows = x.transpose(0, 1).reshape(T * B, d)
            z = torch.addmm(bias.reshape(G * d), rows, stacked("weight_ih").reshape(G * d, d).t())
            z = z.view(T, B, G, d).transpose(1, 2)
        else:  # one batched product per input width: d below a one-way layer, 2d below a two-way one
            parts, first = [], 0
            for group in (streams[:len(one_way)], streams[len(one_way):]):
                if group:
                    rows = torch.stack([below[k] for k, _ in group])  # [g, T, B, width]
                    g, width = len(group), rows.shape[-1]
                    part = torch.baddbmm(bias[first:first + g].unsqueeze(1), rows.view(g, T * B, width),
                                         stacked("weight_ih", group).transpose(1, 2))
                    parts.append(part.view(g, T, B, d).transpose(0, 1))
                    first += g
            z = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        if two_way:  # the backward directions run on time-reversed projections
            z = torch.cat([z[:, :G - len(two_way)], z[:, G - len(two_way):].flip(0)], dim=1)
        # unbind, not one slice per stream: its backward writes the streams' gradients into
        # one map, where each slice's would be a zero-filled map of all G streams
        h = TanhRecurrence.apply(z, w_hh).unbind(1)  # G x [T, B, d]
        for k in active:
            out = h[streams.index((k, ""))]
            if rnns[k].bidirectional:
                out = torch.cat([out, h[streams.index((k, "_reverse"))].flip(0)], dim=-1)
            if rnns[k].num_layers == layer + 1:
                outputs[k] = out.transpose(0, 1)
            else:
                below[k] = torch.dropout(out.contiguous(), rnns[k].dropout, True) if draws_dropout(rnns[k]) else out
    return outputs


__all__ = ["TanhRecurrence", "draws_dropout", "stackable", "stacked_tanh_rnn"]
