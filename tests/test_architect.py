"""The architect: first-order = plain validation gradient; second-order = the exact unrolled
hypergradient (checked against double backward), and it never touches the weights."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from emodarts_core.darts.architect import Architect
from emodarts_core.config import preset
from emodarts_core.training.loop import NonFiniteLossError
from emodarts_core.space.search_network import SearchNetwork
from loop_helpers import single_thread  # noqa: F401

MU, WD = 0.9, 3e-4
# The smallest supernet with every cell kind: 2 reductions, 1 node per cell, 1 SeqNN cell.
MINI = dict(input_size=(4, 4), init_channels=1, nodes=1, seq_nodes=1, seq_dim=4)


class TinyMixed(nn.Module):
    """Two candidate branches mixed by softmax(alpha): nonlinear in weights and alphas."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 6)
        self.fc2 = nn.Linear(5, 6)
        self.head = nn.Linear(6, 3)
        self.alpha = nn.Parameter(torch.tensor([[0.3, -0.2]]))

    def weights(self):
        return (p for n, p in self.named_parameters() if n != "alpha")

    def alphas(self):
        return [self.alpha]

    def forward(self, x):
        w = F.softmax(self.alpha, dim=-1)[0]
        return self.head(w[0] * torch.tanh(self.fc1(x)) + w[1] * torch.sigmoid(self.fc2(x)) ** 2)


def _batches(seed=0, n=8, d=5, k=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, d, generator=g, dtype=dtype), torch.randint(0, k, (n,), generator=g)) for _ in range(3)]


def _setup(model, xi=0.5):
    """Architect plus an SGD optimiser that has taken one step (so momentum buffers exist)."""
    w_optim = torch.optim.SGD(list(model.weights()), lr=xi, momentum=MU, weight_decay=WD)
    (x, y), (tx, ty), (vx, vy) = _batches()
    w_optim.zero_grad()
    F.cross_entropy(model(x), y).backward()
    w_optim.step()
    return Architect(model, MU, WD, 3e-4, (0.5, 0.999), 1e-3), w_optim, (tx, ty, vx, vy)


def exact_hypergradient(model, w_optim, tx, ty, vx, vy, xi):
    """d/d alpha of L_val(w - xi (grad_w L_train(w, alpha) + mu buf + wd w), alpha) by double backward."""
    named = [(n, p) for n, p in model.named_parameters() if any(p is q for q in model.weights())]
    ws = [p.detach().requires_grad_(True) for _, p in named]
    names = [n for n, _ in named]
    train_loss = F.cross_entropy(functional_call(model, dict(zip(names, ws)), (tx,)), ty)
    grads = torch.autograd.grad(train_loss, ws, create_graph=True, allow_unused=True)
    grads = [torch.zeros_like(w) if g is None else g for w, g in zip(ws, grads)]
    w_prime = [w.detach() - xi * (g + MU * w_optim.state[p]["momentum_buffer"] + WD * w.detach())
               for w, g, (_, p) in zip(ws, grads, named)]
    val_loss = F.cross_entropy(functional_call(model, dict(zip(names, w_prime)), (vx,)), vy)
    return torch.autograd.grad(val_loss, model.alphas())


def _rel(a, b):
    a, b = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
    return ((a - b).norm() / b.norm()).item()


def test_second_order_matches_double_backward():
    torch.manual_seed(0)
    model = TinyMixed().double()
    xi = 0.5
    arch, w_optim, (tx, ty, vx, vy) = _setup(model, xi)
    ours, _ = arch.alpha_gradients(tx, ty, vx, vy, xi, w_optim, order=2)
    reference = exact_hypergradient(model, w_optim, tx, ty, vx, vy, xi)
    assert _rel(ours, reference) < 1e-3
    # The check is sensitive to the Hessian term: without it (the reference code's `/ 2. * eps`
    # made it ~eps^2 times too small) the gradient is far off.
    w_prime = arch.virtual_weights(tx, ty, xi, w_optim)
    val_loss = F.cross_entropy(functional_call(model, dict(zip(arch.weight_names, w_prime)), (vx,)), vy)
    without_hessian = torch.autograd.grad(val_loss, model.alphas())
    assert _rel(without_hessian, reference) > 1e-2


@pytest.mark.parametrize("seq_attention", ["paper", "dot"])
def test_second_order_on_search_network_matches_double_backward(seq_attention):
    """In float64 the only error left is the central difference's O(eps^2) (about 1e-5 here).
    The SeqNN edges run their tanh RNNs as one batched recurrence (`fast.recurrence`), whose
    double backward must be exact for the reference: with a first-order-only backward the
    reference silently lost those terms (1e-3 with "paper", 7e-3 with "dot")."""
    torch.manual_seed(0)
    model = SearchNetwork(preset("smoke", **MINI, seq_attention=seq_attention)).double()
    xi = 0.1
    w_optim = torch.optim.SGD(list(model.weights()), lr=xi, momentum=MU, weight_decay=WD)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 1, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (3, 4), generator=g)
    w_optim.zero_grad()
    F.cross_entropy(model(x[0]), y[0]).backward()
    w_optim.step()
    arch = Architect(model, MU, WD, 3e-4, (0.5, 0.999), 1e-3)
    # Model in eval mode: BatchNorm uses fixed statistics, so the loss is a plain function of w.
    model.eval()
    ours, _ = arch.alpha_gradients(x[1], y[1], x[2], y[2], xi, w_optim, order=2)
    reference = exact_hypergradient(model, w_optim, x[1], y[1], x[2], y[2], xi)
    assert _rel(ours, reference) < 1e-4


def test_first_order_is_plain_validation_gradient():
    torch.manual_seed(0)
    model = TinyMixed().double()
    arch, w_optim, (tx, ty, vx, vy) = _setup(model)
    ours, val_loss = arch.alpha_gradients(tx, ty, vx, vy, 0.5, w_optim, order=1)
    loss = F.cross_entropy(model(vx), vy)
    (plain,) = torch.autograd.grad(loss, model.alphas())
    assert torch.equal(ours[0], plain)
    assert val_loss == pytest.approx(loss.item())


@pytest.mark.parametrize("order", [1, 2])
def test_alpha_step_changes_only_alphas(order):
    torch.manual_seed(0)
    model = SearchNetwork(preset("smoke", **MINI))
    w_optim = torch.optim.SGD(list(model.weights()), lr=0.025, momentum=MU, weight_decay=WD)
    arch = Architect(model, MU, WD, 3e-4, (0.5, 0.999), 1e-3)
    before = copy.deepcopy(model.state_dict())
    g = torch.Generator().manual_seed(0)
    tx, vx = torch.randn(2, 4, 1, 4, 4, generator=g)
    ty, vy = torch.arange(4), torch.arange(4).flip(0)
    arch.step(tx, ty, vx, vy, 0.025, w_optim, order)
    after = model.state_dict()
    for name, value in before.items():
        if name.startswith("alpha_"):
            assert not torch.equal(value, after[name]), name
        else:
            assert torch.equal(value, after[name]), f"{name} changed in the alpha step"
    assert all(p.grad is None for p in model.weights())


def test_non_finite_validation_loss_stops_before_alpha_update():
    torch.manual_seed(0)
    model = TinyMixed().double()
    arch, w_optim, (tx, ty, vx, vy) = _setup(model)
    vx = vx.clone()
    vx[0, 0] = float("nan")
    alpha = model.alpha.detach().clone()
    with pytest.raises(NonFiniteLossError, match="non-finite"):
        arch.step(tx, ty, vx, vy, 0.5, w_optim, order=1)
    assert torch.equal(model.alpha, alpha)


def test_weights_and_alphas_must_be_disjoint():
    model = TinyMixed()
    model.weights = lambda: iter(model.parameters())
    with pytest.raises(ValueError, match="disjoint"):
        Architect(model, MU, WD, 3e-4)
