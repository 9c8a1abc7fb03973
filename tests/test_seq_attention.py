"""The SeqNN attention ops (lstm_att_j, rnn_att_j) in the reference code's form (docs/REFERENCE_CODE.md, defect 1):
bidirectional recurrent net, a linear score of outputs and final state, softmax over the
time steps of one utterance, two linear layers back to d; and the "dot" variant."""

import pytest
import torch
import torch.nn.functional as F

from emodarts_core.config import ConfigError, NetworkConfig, preset
from emodarts_core.space.derived import DerivedNetwork
from emodarts_core.space.genotypes import Genotype
from emodarts_core.space.ops import (SEQ_ATTENTION_FORMS, SEQ_OPS, DotRecurrentAttention, Recurrent,
                                     RecurrentAttention)
from emodarts_core.space.search_network import SearchNetwork

ATT_OPS = ["lstm_att_1", "lstm_att_2", "rnn_att_1", "rnn_att_2"]


def _n(module):
    return sum(p.numel() for p in module.parameters())


def _recurrent_params(kind, d, layers, directions):
    """nn.LSTM / nn.RNN: per layer and direction, W_ih, W_hh and two biases per gate."""
    gates = 4 if kind == "lstm" else 1
    total = 0
    for layer in range(layers):
        d_in = d if layer == 0 else directions * d
        total += directions * gates * (d_in * d + d * d + 2 * d)
    return total


def paper_attention_params(kind, d, layers):
    """Hand count of `RecurrentAttention`: biLSTM/biRNN + attn (2d + |s| -> 2d) + combine
    (4d -> 2d) + out (2d -> d), with |s| = 4d (h and c, both directions) or 2d (h)."""
    state = 4 * d if kind == "lstm" else 2 * d
    attn = (2 * d + state) * 2 * d + 2 * d
    combine = 4 * d * 2 * d + 2 * d
    out = 2 * d * d + d
    return _recurrent_params(kind, d, layers, 2) + attn + combine + out


@pytest.mark.parametrize("name", ATT_OPS)
def test_a_samples_output_does_not_depend_on_its_batch(name):
    torch.manual_seed(0)
    op = SEQ_OPS[name](6).double().eval()
    assert isinstance(op, RecurrentAttention)
    g = torch.Generator().manual_seed(1)
    sample = torch.randn(1, 7, 6, generator=g, dtype=torch.float64)
    alone = op(sample)
    for trial in range(3):
        others = torch.randn(4, 7, 6, generator=g, dtype=torch.float64)
        batch = torch.cat([others[:trial], sample, others[trial:]])
        torch.testing.assert_close(op(batch)[trial:trial + 1], alone, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ATT_OPS)
def test_attention_weights_sum_to_one_over_time_and_shape_is_kept(name):
    torch.manual_seed(0)
    op = SEQ_OPS[name](8).eval()
    x = torch.randn(3, 5, 8)
    o, w = op.attention(x)
    assert o.shape == w.shape == (3, 5, 16)  # bidirectional: 2d
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(dim=1), torch.ones(3, 16))
    assert op(x).shape == (3, 5, 8)


@pytest.mark.parametrize("d", [4, 32, 128])
@pytest.mark.parametrize("kind", ["lstm", "rnn"])
@pytest.mark.parametrize("layers", [1, 2])
def test_parameter_count_matches_hand_formula(kind, layers, d):
    op = SEQ_OPS[f"{kind}_att_{layers}"](d)
    assert _n(op) == paper_attention_params(kind, d, layers)
    plain = SEQ_OPS[f"{kind}_{layers}"](d)
    assert isinstance(plain, Recurrent) and not plain.rnn.bidirectional
    assert _n(plain) == _recurrent_params(kind, d, layers, 1)
    assert _n(op) > _n(plain)
    # the "dot" form has exactly the plain net's parameters
    assert _n(SEQ_OPS[f"{kind}_att_{layers}"](d, "dot")) == _n(plain)


@pytest.mark.parametrize("kind, layers", [("lstm", 1), ("lstm", 2), ("rnn", 1), ("rnn", 2)])
def test_recurrent_net_is_bidirectional_with_dropout_between_layers_only(kind, layers):
    rnn = SEQ_OPS[f"{kind}_att_{layers}"](6).rnn
    assert rnn.bidirectional and rnn.batch_first and rnn.num_layers == layers
    assert rnn.dropout == (0.3 if layers > 1 else 0.0)


@pytest.mark.parametrize("name", ["lstm_att_1", "rnn_att_2"])
def test_gradients_match_gradcheck(name):
    torch.manual_seed(0)
    op = SEQ_OPS[name](3).double().eval()
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    params = list(op.parameters())
    names = [n for n, _ in op.named_parameters()]

    def f(x, *ps):
        return torch.func.functional_call(op, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x, *[p.detach().requires_grad_() for p in params]))


def test_final_state_shapes_the_attention():
    """A linear score's W_a s would be the same at every step and cancel in the softmax over
    time; the tanh keeps it: the state's weights get a gradient, and changing them changes
    the attention weights."""
    torch.manual_seed(0)
    op = SEQ_OPS["lstm_att_1"](4).double().eval()
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    op(x).square().sum().backward()
    assert op.attn.weight.grad[:, 2 * 4:].abs().max() > 1e-6
    _, before = op.attention(x)
    with torch.no_grad():
        op.attn.weight[:, 2 * 4:] += 0.5
    _, after = op.attention(x)
    assert (after - before).abs().max() > 1e-3


@pytest.mark.parametrize("name", ATT_OPS)
def test_dot_variant_still_works(name):
    torch.manual_seed(0)
    op = SEQ_OPS[name](6, "dot").eval()
    assert isinstance(op, DotRecurrentAttention) and not op.recurrent.rnn.bidirectional
    x = torch.randn(4, 5, 6)
    out = op(x)
    assert out.shape == (4, 5, 6)
    h = op.recurrent.rnn(x)[0]
    torch.testing.assert_close(out, h + F.scaled_dot_product_attention(h, h, h))
    torch.testing.assert_close(out[2:3], op(x[2:3]), rtol=1e-5, atol=1e-5)


def test_unknown_attention_form_is_rejected():
    with pytest.raises(ValueError, match="valid: paper, dot"):
        SEQ_OPS["rnn_att_1"](4, "additive")
    with pytest.raises(ConfigError, match="unknown seq_attention 'additive'; valid: paper, dot"):
        NetworkConfig(seq_attention="additive").validate()
    assert NetworkConfig().seq_attention == "paper"
    assert set(NetworkConfig.SEQ_ATTENTIONS) == set(SEQ_ATTENTION_FORMS)


@pytest.mark.parametrize("attention, cls", [("paper", RecurrentAttention), ("dot", DotRecurrentAttention)])
def test_networks_build_the_configured_form(attention, cls):
    cfg = preset("smoke", seq_attention=attention)
    search = SearchNetwork(cfg)
    assert any(isinstance(m, cls) for m in search.modules())
    assert not any(isinstance(m, (RecurrentAttention, DotRecurrentAttention)) and not isinstance(m, cls)
                   for m in search.modules())
    cnn = [("skip_connect", 0), ("skip_connect", 1)] * cfg.nodes
    genotype = Genotype(cnn, list(range(2, 2 + cfg.nodes)), cnn, list(range(2, 2 + cfg.nodes)),
                        [("lstm_att_1", 0), ("rnn_att_2", 1)] * cfg.seq_nodes,
                        list(range(2, 2 + cfg.seq_nodes)))
    derived = DerivedNetwork(genotype, cfg).eval()
    assert sum(isinstance(m, cls) for m in derived.modules()) == 2 * cfg.seq_nodes
    assert derived(torch.randn(2, 1, *cfg.input_size)).shape == (2, cfg.n_classes)
