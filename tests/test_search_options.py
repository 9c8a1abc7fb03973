"""Search options that give DARTS its best chance: β-DARTS' Beta-Decay regulariser and a
weight warm-up before the first alpha step."""

import json

import pytest
import torch

from emodarts_core.config import ConfigError
from emodarts_core.darts.architect import Architect
from emodarts_core.darts.budget import init_seed
from emodarts_core.darts.collapse import beta_decay_loss, beta_decay_weight
from emodarts_core.darts.search import run_search
from emodarts_core.space.genotypes import from_text, load
from emodarts_core.space.search_network import SearchNetwork
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net  # noqa: F401


def test_beta_decay_weight_rises_linearly_from_zero_to_its_final_value():
    assert [beta_decay_weight(e, 5, 2.0) for e in range(5)] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert beta_decay_weight(0, 1, 3.0) == 3.0


def test_beta_decay_gradient_is_the_mean_softmax_of_each_edge():
    """d/dα mean_e logsumexp(α_e) = softmax(α_e) / n_edges: the exact gradient, by hand."""
    a = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    ga, gb = torch.autograd.grad(beta_decay_loss([a, b]), [a, b])
    assert torch.allclose(ga, torch.softmax(a, -1) / 5, atol=1e-15)
    assert torch.allclose(gb, torch.softmax(b, -1) / 3, atol=1e-15)


def test_the_architect_adds_the_penalty_gradient_to_the_alpha_gradient():
    torch.manual_seed(0)
    model = SearchNetwork(tiny_net())
    architect = Architect(model, 0.9, 3e-4, 3e-4)
    x, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 3])
    w_optim = torch.optim.SGD(model.weights(), lr=0.1)
    torch.manual_seed(1)  # the same dropout masks (attention ops) in both passes
    plain, _ = architect.alpha_gradients(x, y, x, y, 0.1, w_optim, 1)
    extra = architect.penalty_gradients(beta_decay_loss, 0.7)
    before = [a.detach().clone() for a in architect.alphas]
    for alpha, p in zip(before, extra):
        assert torch.allclose(p, 0.7 * torch.softmax(alpha, -1) / alpha.shape[0], atol=1e-7)
    torch.manual_seed(1)
    architect.step(x, y, x, y, 0.1, w_optim, 1, beta_decay_loss, 0.7)
    for alpha, g, p in zip(architect.alphas, plain, extra):
        assert alpha.grad is not None and torch.allclose(alpha.grad, g + p, atol=1e-7)
    assert any(not torch.equal(a, b) for a, b in zip(architect.alphas, before))


def test_beta_decay_search_records_its_weight_per_epoch(tmp_path):
    run_search(tiny_fold(), tiny_net(), search_cfg(epochs=3, collapse_remedy="beta_decay", beta_decay_weight=2.0),
               tmp_path / "s")
    history = json.loads((tmp_path / "s" / "alpha_history.json").read_text())["epochs"]
    assert [e["remedy"] for e in history] == [{"name": "beta_decay", "weight": w} for w in (0.0, 1.0, 2.0)]
    # beside genotype.json, the same genotype in pt.darts' text form
    text = (tmp_path / "s" / "genotype.txt").read_text()
    assert from_text(text) == load(tmp_path / "s" / "genotype.json")


def test_warmup_epochs_leave_the_alphas_untouched(tmp_path):
    """During the warm-up only the weights learn: the alphas stay at their initial,
    seeded values, so the op probabilities after epoch 1 equal the untrained network's."""
    torch.manual_seed(init_seed(0, tiny_fold().fold.index))  # fold 1's start under seed 0
    initial = {k: v.tolist() for k, v in SearchNetwork(tiny_net()).alpha_probs().items()}
    run_search(tiny_fold(), tiny_net(), search_cfg(epochs=3, warmup_epochs=2), tmp_path / "s")
    history = json.loads((tmp_path / "s" / "alpha_history.json").read_text())["epochs"]
    metrics = [json.loads(line) for line in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    assert [m["alpha_step"] for m in metrics] == [False, False, True]
    assert history[0]["probs"] == history[1]["probs"]
    assert history[2]["probs"] != history[1]["probs"]
    for kind, probs in initial.items():
        assert history[0]["probs"][kind] == probs


@pytest.mark.parametrize("bad", [{"warmup_epochs": 3}, {"warmup_epochs": -1}, {"beta_decay_weight": -1.0}])
def test_bad_options_are_refused_before_any_work(tmp_path, bad):
    with pytest.raises(ConfigError):
        run_search(tiny_fold(), tiny_net(), search_cfg(epochs=3, **bad), tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_each_epoch_prints_one_line_for_a_terminal(tmp_path, capsys):
    """With progress on, every epoch also prints a plain line (loss, val UA, seconds): what
    `papermill --log-output` (make demo) shows while a notebook's search runs."""
    run_search(tiny_fold(), tiny_net(), search_cfg(epochs=2, progress=True), tmp_path / "s")
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if line.startswith("search epoch")]
    assert [line.split(":")[0] for line in lines] == ["search epoch 1/2", "search epoch 2/2"]
    assert all("val UA" in line and line.endswith(" s") for line in lines)
