"""The steps of K stacked searches: each copy's α step, weight step and evaluation.

`emodarts_core.fast.stacked_network.StackedSearchNetwork` carries K searches in one
network; this module takes their steps as `darts.architect.Architect` and
`training.loop.weight_step` take one search's, copy by copy in what they compute:

- the losses are per copy ([K]); the gradient of their sum is each copy's own gradient,
  since no operation mixes two copies;
- gradient clipping uses each copy's own norm (torch's `clip_grad_norm_` formula over
  that copy's gradients);
- the optimisers (SGD with momentum for the weights, Adam for α) are elementwise, so one
  optimiser over the stacked tensors is K optimisers, as long as the copies it steps
  step together; a copy that does not take a step (the `prior` control's frozen α, a
  copy stopped by a non-finite loss) gets its tensors and optimiser state put back;
- second order (DARTS eq. 7-8) uses each copy's own finite-difference step
  eps_k = 0.01 / ||v_k|| (`Architect.hessian_vector`).

A copy whose loss or gradient is not finite is reported in `StepFailures` with the
message a single search raises, and the step goes on for the others; its own tensors are
left as they were before the step.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call

from emodarts_core.darts.architect import sgd_lookahead
from emodarts_core.fast.stacked_network import StackedSearchNetwork, copy_losses
from emodarts_core.training.metrics import unweighted_accuracy, weighted_accuracy


class StepFailures(dict):
    """{copy index: message} of the copies whose loss or gradient was not finite in a step."""


def per_copy_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Each copy's L2 norm over the stacked tensors: [K] (torch's clip_grad_norm_ order: per tensor, then overall)."""
    norms = torch.stack([torch.linalg.vector_norm(t.flatten(1), dim=1) for t in tensors])
    return torch.linalg.vector_norm(norms, dim=0)


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


class Keep:
    """Snapshot of copies' slices of tensors (and optimiser state), put back with `restore`."""

    def __init__(self, copies: list[int], tensors: list[torch.Tensor], optimizer: torch.optim.Optimizer):
        self.copies = copies
        self.items = []
        if not copies:
            return
        idx = torch.tensor(copies)
        for t in tensors:
            self.items.append((t, t.detach()[idx].clone()))
            for value in optimizer.state.get(t, {}).values():
                if torch.is_tensor(value) and value.dim() and value.shape[0] == t.shape[0]:
                    self.items.append((value, value[idx].clone()))
        self.idx = idx

    @torch.no_grad()
    def restore(self) -> None:
        for t, saved in self.items:
            t.detach()[self.idx] = saved


class StackedArchitect:
    """The α optimiser of a stacked search (`darts.architect.Architect`, copy by copy)."""

    def __init__(self, model: StackedSearchNetwork, w_momentum: float, w_weight_decay: float, alpha_lr: float,
                 alpha_betas=(0.5, 0.999), alpha_weight_decay: float = 1e-3):
        self.model = model
        self.w_momentum, self.w_weight_decay = w_momentum, w_weight_decay
        self.alphas = list(model.alphas())
        self.weight_names = [n for n, _ in model.named_weights()]
        self.weights = [p for _, p in model.named_weights()]
        self.optimizer = torch.optim.Adam(self.alphas, lr=alpha_lr, betas=tuple(alpha_betas),
                                          weight_decay=alpha_weight_decay)

    def _losses(self, weights, x, y) -> torch.Tensor:
        state = {n: b.clone() for n, b in self.model.named_buffers()}
        state.update(zip(self.weight_names, weights))
        return copy_losses(functional_call(self.model, state, (x,)), y)

    @staticmethod
    def _grad(total: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        grads = torch.autograd.grad(total, inputs, allow_unused=True)
        return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads)]

    @staticmethod
    def _check(losses: torch.Tensor, what: str, active: list[int], failures: StepFailures) -> None:
        for k in active:
            value = losses[k].item()
            if not math.isfinite(value) and k not in failures:
                failures[k] = f"non-finite {what} loss ({value}) in the architecture (alpha) step"

    @staticmethod
    def _sum(losses: torch.Tensor, active: list[int], failures: StepFailures) -> torch.Tensor:
        keep = [k for k in active if k not in failures]
        return losses[keep].sum() if keep else losses.sum() * 0.0

    def virtual_weights(self, tx, ty, w_lr, w_optim, active, failures) -> list[torch.Tensor]:
        weights = [w.detach().requires_grad_(True) for w in self.weights]
        losses = self._losses(weights, tx, ty)
        self._check(losses, "training", active, failures)
        grads = self._grad(self._sum(losses, active, failures), weights)
        return sgd_lookahead(self.weights, weights, grads, w_lr, w_optim, self.w_momentum, self.w_weight_decay)

    def hessian_vector(self, vector, tx, ty, active, failures) -> list[torch.Tensor]:
        norm = torch.sqrt(sum((v.double() ** 2).flatten(1).sum(1) for v in vector))
        usable = torch.isfinite(norm) & (norm != 0.0)
        eps = torch.where(usable, 0.01 / torch.where(usable, norm, torch.ones_like(norm)), torch.zeros_like(norm))
        sides = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                shifted = [w.detach() + sign * _bcast(eps, v) * v for w, v in zip(self.weights, vector)]
            losses = self._losses(shifted, tx, ty)
            self._check(losses, "training", active, failures)
            sides.append(self._grad(self._sum(losses, active, failures), self.alphas))
        safe = torch.where(usable, eps, torch.ones_like(eps))
        return [torch.where(_bcast(usable, p).bool(), (p - n) / (2.0 * _bcast(safe, p)), torch.zeros_like(p))
                for p, n in zip(*sides)]

    def alpha_gradients(self, tx, ty, vx, vy, w_lr, w_optim, order, active, failures):
        """The α (hyper)gradients [K, ...] and the validation losses [K]."""
        if order == 1:
            losses = self._losses([w.detach() for w in self.weights], vx, vy)
            self._check(losses, "validation", active, failures)
            return self._grad(self._sum(losses, active, failures), self.alphas), losses.detach()
        if order != 2:
            raise ValueError(f"order must be 1 or 2, got {order!r}")
        w_prime = self.virtual_weights(tx, ty, w_lr, w_optim, active, failures)
        losses = self._losses(w_prime, vx, vy)
        self._check(losses, "validation", active, failures)
        grads = self._grad(self._sum(losses, active, failures), self.alphas + w_prime)
        d_alpha, d_w = grads[:len(self.alphas)], grads[len(self.alphas):]
        hessian = self.hessian_vector(d_w, tx, ty, active, failures)
        return [da - w_lr * h for da, h in zip(d_alpha, hessian)], losses.detach()

    def step(self, tx, ty, vx, vy, w_lr: float, w_optim, order: int, active: list[int],
             penalty: Callable | None = None, penalty_weight: float = 0.0) -> tuple[torch.Tensor, StepFailures]:
        """One Adam step on the α of the `active` copies; returns their validation losses [K]
        and the copies that failed (their α and Adam state unchanged)."""
        failures = StepFailures()
        grads, losses = self.alpha_gradients(tx, ty, vx, vy, w_lr, w_optim, order, active, failures)
        if penalty is not None and penalty_weight:
            with torch.enable_grad():
                per_copy = torch.stack([penalty([a[k] for a in self.alphas]) for k in range(self.model.copies)])
                extra = self._grad(penalty_weight * per_copy.sum(), self.alphas)
            grads = [g + p for g, p in zip(grads, extra)]
        for k in active:
            if k not in failures and not all(torch.isfinite(g[k]).all() for g in grads):
                failures[k] = "non-finite alpha gradient in the architecture (alpha) step"
        idle = [k for k in range(self.model.copies) if k not in active or k in failures]
        keep = Keep(idle, self.alphas, self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        for alpha, g in zip(self.alphas, grads):
            alpha.grad = torch.nan_to_num(g.detach()).to(alpha.dtype)
        self.optimizer.step()
        keep.restore()
        return losses, failures


def weight_step(model: StackedSearchNetwork, params: list[torch.Tensor], x, y, optimizer, grad_clip: float,
                active: list[int]) -> tuple[torch.Tensor, torch.Tensor, StepFailures]:
    """One SGD step of the `active` copies (`training.loop.weight_step`, copy by copy).

    Returns the losses [K], the numbers correct [K] and the failed copies, whose weights and
    momentum stay as they were; each copy's gradient is clipped to `grad_clip` by its own norm.
    """
    failures = StepFailures()
    optimizer.zero_grad(set_to_none=True)
    logits = model(x)
    losses = copy_losses(logits.float(), y)  # in float32, as the single search's weight step computes it
    for k in active:
        value = losses[k].item()
        if not math.isfinite(value):
            failures[k] = f"non-finite training loss ({value}) in the weight step"
    ok = [k for k in active if k not in failures]
    (losses[ok].sum() if ok else losses.sum() * 0.0).backward(inputs=params)
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    norms = per_copy_norm(grads)
    for k in ok:
        if not math.isfinite(norms[k].item()):
            failures[k] = f"non-finite gradient norm ({norms[k].item()}) in the weight step"
    coef = torch.clamp(grad_clip / (norms + 1e-6), max=1.0)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.grad = torch.nan_to_num(g * _bcast(coef, g))
    idle = [k for k in range(model.copies) if k not in active or k in failures]
    keep = Keep(idle, params, optimizer)
    optimizer.step()
    keep.restore()
    hits = (logits.detach().argmax(-1) == y).sum(dim=1)
    return losses.detach(), hits, failures


@torch.no_grad()
def evaluate(model: StackedSearchNetwork, loaders: list, device: torch.device) -> list[dict]:
    """`training.loop.evaluate` of each copy on its own loader (equal batch sizes, in step)."""
    was_training = model.training
    model.eval()
    K = model.copies
    total = [0.0] * K
    preds, truth = [], []
    for batches in zip(*loaders):
        x = torch.stack([b[0] for b in batches]).to(device)
        y = torch.stack([b[1] for b in batches]).to(device)
        logits = model(x).float()
        for k in range(K):  # each copy's sum as the single search's evaluation takes it
            total[k] += F.cross_entropy(logits[k], y[k], reduction="sum").item()
        preds.append(logits.argmax(-1).cpu())
        truth.append(y.cpu())
    model.train(was_training)
    y_pred, y_true = torch.cat(preds, dim=1).numpy(), torch.cat(truth, dim=1).numpy()
    out = []
    for k in range(K):
        out.append({"loss": total[k] / y_true.shape[1], "acc": weighted_accuracy(y_true[k], y_pred[k]),
                    "ua": unweighted_accuracy(y_true[k], y_pred[k]), "y_true": y_true[k], "y_pred": y_pred[k]})
    return out


__all__ = ["Keep", "StackedArchitect", "StepFailures", "evaluate", "per_copy_norm", "weight_step"]
