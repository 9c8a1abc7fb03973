"""A stacked SeqNN edge's recurrent candidates, all K copies, as one batched recurrence
per layer depth and kind.

A stacked search (docs/PERFORMANCE.md, "Many searches in one step") holds K copies of
every SeqNN op, each recurrence a `StackedRecurrent` on [K, B, T, d]. Run one candidate
after the other, each of its layers costs T time steps of small calls forward and
backward, for every candidate of the edge. The fast single form runs an edge's tanh RNN
candidates together, one `TanhRecurrence` per layer depth (`fast.recurrence`); here the
same recurrence runs over a group dimension of streams x copies: layer l of every tanh
RNN candidate that has one, each direction, each of the K copies, is one recurrence
(group index s*K + k for stream s, copy k). The LSTM candidates form a second group of
the same shape, run by `LSTMRecurrence` (the LSTM cell with its backpropagation through
time written out), where the plain form calls torch's fused LSTM per candidate.

Each copy keeps its own weights: stream s, copy k reads `weight_hh[k]`, `weight_ih[k]`
and the biases of copy k of its own candidate, and the input projections are batched
products over (stream, copy) pairs (no product sums over two copies or two candidates),
laid out [streams x copies, B, T, 4d] so that the recurrence reads them time-major as a
view (a backward direction projects its input flipped in time), so values
and gradients are those of the candidates run one by one (to float rounding;
tests/test_stacked_recurrence.py compares them in float64 and fails a grouping that
mixes copies or candidates). Dropout between layers is drawn as `StackedRecurrent` draws
it, on the same [K, B, T, 2d] layer output, and each group runs where the per-candidate
form runs the one candidate of it that draws masks (at most one per group), so the
random draws come in the same order and give the same masks.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from emodarts_core.fast.recurrence import TanhRecurrence
from emodarts_core.fast.stacked_layers import StackedRecurrent
from emodarts_core.space import ops


class LSTMRecurrence(torch.autograd.Function):
    """The LSTM recurrence of G independent streams at once (torch's gate order: input,
    forget, cell, output; h_{-1} = c_{-1} = 0):

        a_t = z_t + h_{t-1} W_g^T,  i, f, o = sigmoid(a_t[i, f, o]),  g = tanh(a_t[g])
        c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t)

    Time-major: `z` [T, G, B, 4d] (any strided view: it is read step by step) holds the
    input projections plus both biases, `w_hh`
    [G, 4d, d] the recurrent weights; returns (h, c), each [T, G, B, d]. The backward is
    backpropagation through time written out from the gates saved in the forward
    (autograd through the per-step ops of `StackedRecurrent` makes about a dozen nodes per
    step). The maps are small (d = 16 in the study's space, docs/PERFORMANCE.md "Many
    searches in one step"), so the per-step calls' overhead counts: every per-step view is
    taken once before the loop (`unbind`), the forward writes into preallocated maps (seven
    calls a step), and the backward takes five calls a step: dL/dh_t is one `baddbmm` of
    the next step's pre-activation gradients with W_g onto the direct dL/dh_t, and dL/dc_t
    two `addcmul`s. Its pre-activation gradients are kept copy-major ([G, T, B, 4d]), so
    the gradient of W_g is one batched product over all steps. Double backward
    (`create_graph`) is not written: a stacked search's second order takes finite
    differences (`darts.stacked_step`), never a derivative of a backward.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, w_hh: torch.Tensor):
        T, G, B, width = z.shape
        d = width // 4
        gates = z.new_empty(T, G, B, 4, d)  # i, f, g, o after their nonlinearities; z may be any strided view
        h, c, tanh_c = (z.new_empty(T, G, B, d) for _ in range(3))
        w_t = w_hh.transpose(1, 2).contiguous()
        zs, gs, hs, cs, tcs = (x.unbind(0) for x in (z, gates, h, c, tanh_c))
        i, f, g, o = (x.unbind(0) for x in gates.unbind(3))
        pre = z.new_empty(G, B, width)
        for t in range(T):
            a = (zs[t] if t == 0 else torch.baddbmm(zs[t], hs[t - 1], w_t, out=pre)).view(G, B, 4, d)
            torch.sigmoid(a, out=gs[t])
            torch.tanh(a[:, :, 2], out=g[t])
            torch.mul(i[t], g[t], out=cs[t])
            if t:
                cs[t].addcmul_(f[t], cs[t - 1])
            torch.tanh(cs[t], out=tcs[t])
            torch.mul(o[t], tcs[t], out=hs[t])
        ctx.save_for_backward(gates, c, tanh_c, h, w_hh)
        return h, c

    @staticmethod
    def backward(ctx, grad_h: torch.Tensor, grad_c: torch.Tensor):
        if torch.is_grad_enabled():
            raise RuntimeError("LSTMRecurrence has no double backward (create_graph)")
        gates, c, tanh_c, h, w_hh = ctx.saved_tensors
        T, G, B, _, d = gates.shape
        i, f, g, o = gates.unbind(3)
        c_prev = torch.cat([torch.zeros_like(c[:1]), c[:-1]])
        # per-step factors, all steps at once: dL/dc_t from dL/dh_t, and each
        # pre-activation's gradient from dL/dc_t (input, forget, cell) or dL/dh_t (output)
        through_h = (o * (1.0 - tanh_c * tanh_c)).unbind(0)
        from_c = torch.stack([g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g * g)], dim=3).unbind(0)
        from_h = (tanh_c * o * (1.0 - o)).unbind(0)
        grad_h = (torch.zeros_like(h) if grad_h is None else grad_h).unbind(0)
        grad_c = (torch.zeros_like(c) if grad_c is None else grad_c).unbind(0)
        f = f.unbind(0)
        grad_z = gates.new_empty(G, T, B, 4, d)  # copy-major: the weight gradient is one product
        to_c, to_h = grad_z[:, :, :, :3].unbind(1), grad_z[:, :, :, 3].unbind(1)
        grad_zs = grad_z.view(G, T, B, 4 * d).unbind(1)
        dh, dc = h.new_empty(G, B, d), c.new_empty(G, B, d)  # dL/dh_t, dL/dc_t, step by step
        for t in range(T - 1, -1, -1):
            if t == T - 1:
                dh_t = grad_h[t]
                torch.addcmul(grad_c[t], dh_t, through_h[t], out=dc)
            else:
                dh_t = torch.baddbmm(grad_h[t], grad_zs[t + 1], w_hh, out=dh)
                torch.addcmul(grad_c[t], dc, f[t + 1], out=dc)
                dc.addcmul_(dh_t, through_h[t])
            torch.mul(dc.unsqueeze(2), from_c[t], out=to_c[t])
            torch.mul(dh_t, from_h[t], out=to_h[t])
        grad_z = grad_z.view(G, T, B, 4 * d)
        grad_w = None
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(grad_z[:, 1:].reshape(G, (T - 1) * B, 4 * d).transpose(1, 2),
                               h[:-1].transpose(0, 1).reshape(G, (T - 1) * B, d))
        return grad_z.transpose(0, 1), grad_w


def leading_recurrent(op: nn.Module) -> StackedRecurrent | None:
    """The stacked recurrence a SeqNN op begins with, when what follows it
    (`fast.cells.after_rnn`) needs only its outputs and final cell states: `Recurrent`, the
    "dot" attention form, and the paper's attention form (whose final hidden states are
    its outputs at the ends of the sequence)."""
    if isinstance(op, ops.Recurrent):
        rnn = op.rnn
    elif isinstance(op, ops.DotRecurrentAttention):
        rnn = op.recurrent.rnn
    elif isinstance(op, ops.RecurrentAttention):
        rnn = op.rnn
    else:
        return None
    return rnn if isinstance(rnn, StackedRecurrent) else None


def groupable(rnn: StackedRecurrent | None, lstm: bool) -> bool:
    """Whether `grouped_recurrence` computes `rnn` among recurrences of its kind (LSTMs
    when `lstm`, else tanh RNNs): a stacked recurrence of square first layer."""
    return rnn is not None and rnn.lstm == lstm and rnn.weight_ih_l0.shape[-1] == rnn.hidden_size


def draws_masks(rnn: StackedRecurrent) -> bool:
    """Whether running `rnn` draws dropout masks (between its layers, in training)."""
    return bool(rnn.dropout) and rnn.training and rnn.num_layers > 1


def group_parameters(rnns: list[StackedRecurrent], name: str, group: list[tuple[int, str]]) -> torch.Tensor:
    """[streams, K, ...]: parameter `name` (e.g. "weight_hh_l0") of each stream's candidate,
    its direction's suffix appended, all K copies in copy order."""
    return torch.stack([getattr(rnns[c], name + suffix) for c, suffix in group])


def _biases(rnns, layer_name, group) -> torch.Tensor:
    return group_parameters(rnns, "bias_ih" + layer_name, group) + group_parameters(rnns, "bias_hh" + layer_name, group)


def _reversed(stream: tuple[int, str]) -> bool:
    return stream[1] == "_reverse"


def _layer_zero(x: torch.Tensor, rnns, streams, layer_name) -> torch.Tensor:
    """Input projections of layer 0, [S*K, B, T, gates*d] (row s*K + k: stream s, copy k),
    a backward direction's in reversed time (its projections of x flipped in time): one
    batched product over (stream, copy) pairs, each reading its copy's x."""
    K, B, T, d = x.shape
    w = group_parameters(rnns, "weight_ih" + layer_name, streams)  # [S, K, width, d]
    S, width = w.shape[0], w.shape[2]
    back = sum(map(_reversed, streams))  # the backward directions come last
    rows = x.expand(S - back, K, B, T, d)
    if back:
        rows = torch.cat([rows, x.flip(2).expand(back, K, B, T, d)])
    z = torch.baddbmm(_biases(rnns, layer_name, streams).reshape(S * K, 1, width),
                      rows.reshape(S * K, B * T, d), w.reshape(S * K, width, d).transpose(1, 2))
    return z.view(S * K, B, T, width)


def _layer_above(below: dict, rnns, groups, layer_name) -> torch.Tensor:
    """Input projections above layer 0, [S*K, B, T, gates*d] as `_layer_zero`'s: one
    batched product over (stream, copy) pairs per input width (d below a one-way layer,
    2d below a two-way one), a backward direction reading its input flipped in time."""
    parts = []
    for group in groups:
        if group:
            rows = torch.stack([below[c].flip(2) if _reversed((c, s)) else below[c] for c, s in group])
            g, K, B, T, d_in = rows.shape  # rows: [g, K, B, T, d_in]
            w = group_parameters(rnns, "weight_ih" + layer_name, group)  # [g, K, width, d_in]
            width = w.shape[2]
            part = torch.baddbmm(_biases(rnns, layer_name, group).reshape(g * K, 1, width),
                                 rows.reshape(g * K, B * T, d_in), w.reshape(g * K, width, d_in).transpose(1, 2))
            parts.append(part.view(g * K, B, T, width))
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def grouped_recurrence(x: torch.Tensor, rnns: list[StackedRecurrent]):
    """`rnn(x)` for `groupable` stacked recurrences of one kind and width, as one
    recurrence per layer depth over all streams and copies. x: [K, B, T, d]. Returns, per
    RNN, (output [K, B, T, d] or [K, B, T, 2d] for a bidirectional one (forward, then
    backward), the last layer's final cell states [K, B, directions*d] for an LSTM, else None).

    At most one of `rnns` may draw dropout masks (`draws_masks`): with two, the
    depth-by-depth order would draw them in another order than running them one by one.
    """
    if sum(draws_masks(r) for r in rnns) > 1:
        raise ValueError("grouped_recurrence: at most one of the recurrences may draw dropout masks")
    lstm = rnns[0].lstm
    if any(r.lstm != lstm for r in rnns):
        raise ValueError("grouped_recurrence: LSTMs and tanh RNNs run in separate groups")
    K, B, T, d = x.shape
    outputs: list = [None] * len(rnns)
    below: dict[int, torch.Tensor] = {}  # candidate -> its previous layer's output [K, B, T, d or 2d]
    for layer in range(max(r.num_layers for r in rnns)):
        active = [c for c, r in enumerate(rnns) if r.num_layers > layer]
        one_way = [c for c in active if rnns[c].directions == 1]
        two_way = [c for c in active if rnns[c].directions == 2]
        # streams: the one-way RNNs, the two-way ones' forward directions, then their backward ones
        streams = [(c, "") for c in one_way + two_way] + [(c, "_reverse") for c in two_way]
        S, name = len(streams), f"_l{layer}"
        if layer == 0:
            z = _layer_zero(x, rnns, streams, name)
        else:
            z = _layer_above(below, rnns, (streams[:len(one_way)], streams[len(one_way):]), name)
        z = z.permute(2, 0, 1, 3)  # time-major [T, S*K, B, gates*d], a view: the recurrences read it step by step
        w_hh = group_parameters(rnns, "weight_hh" + name, streams).reshape(S * K, -1, d)
        if lstm:
            h, cells = LSTMRecurrence.apply(z, w_hh)
            cells = cells[-1].view(S, K, B, d).unbind(0)  # each stream's final cell state
        else:
            h, cells = TanhRecurrence.apply(z, w_hh), None
        # unbind, not one slice per stream: its backward writes the streams' gradients into one map
        h = h.view(T, S, K, B, d).unbind(1)
        for c in active:
            forward = streams.index((c, ""))
            out = h[forward].permute(1, 2, 0, 3)  # [K, B, T, d]
            final_c = None if cells is None else cells[forward]
            if rnns[c].directions == 2:
                backward = streams.index((c, "_reverse"))
                out = torch.cat([out, h[backward].flip(0).permute(1, 2, 0, 3)], dim=-1)
                final_c = None if cells is None else torch.cat([final_c, cells[backward]], dim=-1)
            if rnns[c].num_layers == layer + 1:
                outputs[c] = (out, final_c)
            else:  # `StackedRecurrent`'s draw: one mask over the contiguous [K, B, T, width] output
                below[c] = F.dropout(out.contiguous(), rnns[c].dropout, True) if draws_masks(rnns[c]) else out
    return outputs


def grouped_names(op_items, x: torch.Tensor, lstm: bool) -> list[str]:
    """The candidates of an edge (`(name, op)` pairs) whose recurrences run grouped, the
    LSTMs (`lstm`) or the tanh RNNs: none off CPU or under autocast; of those that draw
    masks, only the first."""
    if x.device.type != "cpu" or torch.is_autocast_enabled(x.device.type):
        return []
    names = [name for name, op in op_items if groupable(leading_recurrent(op), lstm)]
    drawing = [name for name, op in op_items if name in names and draws_masks(leading_recurrent(op))]
    return [name for name in names if name not in drawing[1:]]


__all__ = ["LSTMRecurrence", "draws_masks", "group_parameters", "groupable", "grouped_names",
           "grouped_recurrence", "leading_recurrent"]
