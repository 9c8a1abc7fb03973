"""Collapse remedies: the DARTS- auxiliary skip and its beta schedule, the P-DARTS skip cap
and the DARTS+ early stop, and their per-epoch records in a search run.

The end-to-end demonstration (a configuration that collapses to an all-skip SeqNN without
a remedy and does not with DARTS-) takes about 20 s per run, so it lives in
tools/collapse_demo.py rather than here.
"""

import json

import numpy as np
import pytest
import torch

from emodarts_core.darts import alpha_record, collapse, search
from emodarts_core.space.cells import MixedOp, SeqMixedOp
from emodarts_core.darts.collapse import AuxiliarySkip, capped_genotype, capped_parse, count_skips, darts_minus_beta
from emodarts_core.config import ConfigError
from emodarts_core.space.genotypes import parse
from emodarts_core.training.rundir import RunDir
from emodarts_core.darts.search import primitives_of, run_search
from emodarts_core.space.search_network import SearchNetwork
from emodarts_core.space.search_space import seq_primitives
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net  # noqa: F401


def test_darts_minus_beta_decays_linearly_from_beta0_to_zero():
    betas = [darts_minus_beta(e, 5) for e in range(5)]
    assert betas == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert darts_minus_beta(0, 3, beta0=0.6) == pytest.approx(0.6) and darts_minus_beta(2, 3, 0.6) == 0.0
    assert darts_minus_beta(0, 1) == 1.0  # a one-epoch search keeps beta0


@pytest.mark.parametrize("partial_channels", [1, 2])
def test_auxiliary_skip_adds_beta_x_on_identity_shaped_edges_only(partial_channels):
    """With partial channels the skip joins each edge's channel sample, the mixed op's input."""
    torch.manual_seed(0)
    model = SearchNetwork(tiny_net(partial_channels=partial_channels)).eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        plain = model(x)
    seen = {"same": 0, "reduce": 0}

    def spy(module, inputs, output):
        seen["same" if output.shape == inputs[0].shape else "reduce"] += 1
        module._plain = (inputs[0].detach(), output.detach())

    spies = [m.register_forward_hook(spy) for m in model.modules() if isinstance(m, (MixedOp, SeqMixedOp))]
    aux = AuxiliarySkip(model, beta=0.5)  # registered after the spies: the spies see plain outputs
    probe = {}

    def record(module, inputs, output):
        probe[module] = output.detach()

    probes = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, (MixedOp, SeqMixedOp))]
    with torch.no_grad():
        boosted = model(x)
    assert seen["same"] > 0 and seen["reduce"] > 0  # both kinds of edges exist in the smoke net
    for m, out in probe.items():
        x_in, plain_out = m._plain
        expected = plain_out + 0.5 * x_in if plain_out.shape == x_in.shape else plain_out
        assert torch.allclose(out, expected), type(m).__name__
    assert not torch.allclose(boosted, plain)

    aux.beta = 0.0
    with torch.no_grad():
        assert torch.equal(model(x), plain)  # beta 0 is exactly plain DARTS
    aux.remove()
    for h in spies + probes:
        h.remove()
    with torch.no_grad():
        assert torch.equal(model(x), plain)


def test_auxiliary_skip_reaches_the_architect_functional_call():
    """The alpha gradient (computed through torch.func.functional_call) sees the auxiliary skip."""
    from emodarts_core.darts.architect import Architect

    torch.manual_seed(0)
    model = SearchNetwork(tiny_net())
    arch = Architect(model, 0.9, 3e-4, 3e-3)
    w_optim = torch.optim.SGD(model.weights(), lr=0.01)
    x, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 3])
    plain, _ = arch.alpha_gradients(x, y, x, y, 0.01, w_optim, order=1)
    aux = AuxiliarySkip(model, beta=1.0)
    boosted, _ = arch.alpha_gradients(x, y, x, y, 0.01, w_optim, order=1)
    aux.remove()
    assert not torch.allclose(plain[-1], boosted[-1])



def test_auxiliary_skip_is_unchanged_by_activation_checkpointing():
    """Checkpointed edges recompute through functional_call: the hook must run there too."""
    torch.manual_seed(0)
    model = SearchNetwork(tiny_net()).eval()
    AuxiliarySkip(model, beta=0.7)
    x = torch.randn(2, 1, 16, 16)

    def grads(on):
        model.set_checkpointing(on)
        model.zero_grad()
        model(x).sum().backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    for plain, ckpt in zip(grads(False), grads(True)):
        assert torch.allclose(plain, ckpt, atol=1e-6)

def test_skip_cap_demotes_the_weakest_skip_to_its_next_best_op():
    prims = ("none", "skip_connect", "lstm_1", "rnn_1")
    # 2 nodes, 5 rows: node 0 reads 0,1; node 1 reads 0,1,2. Every chosen op is a skip.
    probs = np.array([[0.0, 0.9, 0.05, 0.05],
                      [0.0, 0.6, 0.3, 0.1],    # weakest chosen skip -> lstm_1
                      [0.0, 0.8, 0.1, 0.1],
                      [0.0, 0.7, 0.1, 0.2],
                      [0.0, 0.1, 0.0, 0.0]])
    edges, _ = parse(probs, prims, 2)
    assert count_skips(edges) == 4
    capped, concat, demoted = capped_parse(probs, prims, 2, cap=3)
    assert capped == [("skip_connect", 0), ("lstm_1", 1), ("skip_connect", 0), ("skip_connect", 1)]
    assert demoted == [{"node": 0, "input": 1, "weight": 0.6}] and concat == [2, 3]
    capped, _, demoted = capped_parse(probs, prims, 2, cap=0)
    assert count_skips(capped) == 0 and len(demoted) >= 4


@pytest.mark.parametrize("cap", [0, 1, 2])
def test_skip_cap_never_leaves_more_than_cap_skips(cap):
    rng = np.random.default_rng(cap)
    prims = seq_primitives("rnn_only")
    skip = prims.index("skip_connect")
    for nodes in (1, 2, 3, 4):
        rows = sum(2 + i for i in range(nodes))
        for _ in range(50):
            logits = rng.standard_normal((rows, len(prims)))
            logits[:, skip] += rng.uniform(0, 4)  # skip-heavy, as in a collapsing search
            probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
            edges, concat, demoted = capped_parse(probs, prims, nodes, cap)
            plain, _ = parse(probs, prims, nodes)
            assert count_skips(edges) <= cap and len(edges) == 2 * nodes
            if count_skips(plain) <= cap:
                assert edges == plain and demoted == []


def test_capped_genotype_caps_normal_and_seq_but_not_reduce():
    net = tiny_net(seq_nodes=3)
    prims = primitives_of(net)
    probs = {}
    for kind, p in prims.items():
        rows = sum(2 + i for i in range(net.seq_nodes if kind == "seq" else net.nodes))
        a = np.full((rows, len(p)), 0.01)
        a[:, p.index("skip_connect")] = 1.0
        probs[kind] = a / a.sum(1, keepdims=True)
    genotype, state = capped_genotype(probs, prims, net, cap=1)
    assert count_skips(genotype.normal) == 1 and count_skips(genotype.seq) == 1
    assert count_skips(genotype.reduce) == 2 * net.nodes
    assert state["uncapped_skips"] == {"normal": 2 * net.nodes, "seq": 2 * net.seq_nodes}
    assert set(state["demoted"]) == {"normal", "seq"}


def test_darts_minus_search_records_beta_per_epoch(tmp_path):
    result = run_search(tiny_fold(n_search=8), tiny_net(), search_cfg(epochs=3, collapse_remedy="darts_minus"),
                        tmp_path / "run")
    assert [r["remedy"] for r in result.history] == [{"name": "darts_minus", "beta": b} for b in (1.0, 0.5, 0.0)]
    alpha = json.loads((tmp_path / "run" / "alpha_history.json").read_text())
    assert [e["remedy"]["beta"] for e in alpha["epochs"]] == [1.0, 0.5, 0.0]
    assert "remedy.beta" in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]


def test_plain_search_records_no_remedy(tmp_path):
    result = run_search(tiny_fold(n_search=8), tiny_net(), search_cfg(epochs=1), tmp_path / "run")
    assert "remedy" not in result.history[0]
    assert json.loads((tmp_path / "run" / "FINISHED").read_text())["collapse_remedy"] == "none"


def test_skip_cap_search_stops_early_and_resume_does_not_run_on(tmp_path, monkeypatch):
    """DARTS+ stop: once an uncapped cell reaches skip_stop skips the search ends after that epoch,
    also when the process died between the stop epoch's checkpoint and FINISHED."""
    real = collapse.capped_genotype
    calls = []

    def fake_counts(probs, prims, net_cfg, cap):
        genotype, state = real(probs, prims, net_cfg, cap)
        calls.append(1)
        state["uncapped_skips"] = {"normal": 0, "seq": 5 if len(calls) >= 3 else 0}  # call 1 parses the initial α
        return genotype, state

    monkeypatch.setattr(alpha_record, "capped_genotype", fake_counts)
    cfg = search_cfg(epochs=4, collapse_remedy="skip_cap", skip_cap=1, skip_stop=3)
    result = run_search(tiny_fold(n_search=8), tiny_net(), cfg, tmp_path / "run")
    assert [r["remedy"]["stop"] for r in result.history] == [False, True]
    finished = json.loads((tmp_path / "run" / "FINISHED").read_text())
    assert finished["stopped_early_at_epoch"] == 2
    assert count_skips(result.genotype.seq) <= 1 and count_skips(result.genotype.normal) <= 1

    (tmp_path / "run" / "FINISHED").unlink()  # as if killed after the checkpoint of the stop epoch
    again = run_search(tiny_fold(n_search=8), tiny_net(), cfg, tmp_path / "run", resume=True)
    assert len(again.history) == 2 and again.genotype == result.genotype
    assert RunDir(tmp_path / "run").load_checkpoint()["epoch"] == 2


def test_old_run_without_remedy_keys_still_resumes(tmp_path):
    """A run started before the remedy options existed resumes with the default (plain DARTS)."""
    run_dir = tmp_path / "run"
    first = run_search(tiny_fold(n_search=8), tiny_net(), search_cfg(epochs=1), run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    for key in ("collapse_remedy", "darts_minus_beta", "skip_cap", "skip_stop"):
        del config["search"][key]
    (run_dir / "config.json").write_text(json.dumps(config))
    assert run_search(tiny_fold(n_search=8), tiny_net(), search_cfg(epochs=1), run_dir,
                      resume=True).genotype == first.genotype
    with pytest.raises(ConfigError, match="collapse_remedy"):
        run_search(tiny_fold(n_search=8), tiny_net(), search_cfg(epochs=1, collapse_remedy="skip_cap"), run_dir,
                   resume=True)



def test_skip_cap_with_a_huge_cap_is_the_plain_genotype_also_with_partial_channels():
    """With nothing to cap, the capped parse is model.genotype() (incl. PC-DARTS edge weights)."""
    from emodarts_core.config import SearchConfig
    from emodarts_core.darts.search import chosen_genotype

    for net in (tiny_net(), tiny_net(partial_channels=2)):
        torch.manual_seed(1)
        model = SearchNetwork(net)
        with torch.no_grad():
            for _, p in model.named_alphas():  # alphas (and PC-DARTS betas) decisive, not near-uniform
                p.normal_()
        genotype, state = chosen_genotype(model, net, SearchConfig(collapse_remedy="skip_cap", skip_cap=100))
        assert genotype == model.genotype() and state["demoted"] == {"normal": [], "seq": []}
