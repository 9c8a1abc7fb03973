"""The DARTS architect: updates the architecture weights (alphas) on validation data.

Network weights and alphas are kept apart: the weight optimiser (SGD, owned by the search
loop) sees only `model.weights()`, and the architect's Adam sees only `model.alphas()`.

- First order: the alpha gradient is the plain gradient of the validation loss at the
  current weights.
- Second order (DARTS eq. 7-8): one virtual SGD step
  w' = w - xi * (grad_w L_train(w, a) + mu * momentum_buffer + wd * w), then
  grad_a L_val(w', a) - xi * H, with the Hessian-vector product H computed by central
  differences w± = w ± eps * grad_w' L_val, eps = 0.01 / ||grad_w' L_val||,
  H = (grad_a L_train(w+) - grad_a L_train(w-)) / (2 * eps).
  The reference code divided by 2 and multiplied by eps (docs/REFERENCE_CODE.md, defect 2), which made its
  "second order" nearly first order; a test checks ours against an exact double-backward
  reference. The virtual step never copies the network (docs/REFERENCE_CODE.md, defect 5): it evaluates
  the same module with substituted parameters through `torch.func.functional_call`.

The architect never changes the network weights nor the BatchNorm running statistics
(its forward passes run on cloned buffers).
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call

from emodarts_core.training.loop import NonFiniteLossError


def sgd_lookahead(live_weights, weights, grads, w_lr: float, w_optim: torch.optim.Optimizer,
                  momentum: float, weight_decay: float) -> list[torch.Tensor]:
    """One SGD step of the weights taken on copies, w' = w - ξ (∇w L_train + μ·buffer + wd·w)
    (DARTS §2.3's one-step unrolled weights, with the optimiser's momentum buffer): fresh leaf
    tensors for the second-order α gradient, the live weights untouched."""
    with torch.no_grad():
        out = []
        for live, w, g in zip(live_weights, weights, grads):
            buf = w_optim.state.get(live, {}).get("momentum_buffer")
            step = g + weight_decay * w
            if buf is not None:
                step = step + momentum * buf
            out.append((w - w_lr * step).detach().requires_grad_(True))
    return out


class Architect:
    """Alpha optimiser for a search network that exposes `.weights()` and `.alphas()`.

    `w_momentum` and `w_weight_decay` must be those of the weight optimiser: the virtual
    step of second-order DARTS imitates it. `criterion(logits, y)` defaults to cross
    entropy; `autocast` (a context-manager factory) is applied in first-order steps only,
    since the finite differences of second order need full precision.
    """

    def __init__(self, model: torch.nn.Module, w_momentum: float, w_weight_decay: float,
                 alpha_lr: float, alpha_betas=(0.5, 0.999), alpha_weight_decay: float = 1e-3, *,
                 criterion: Callable | None = None, autocast: Callable | None = None):
        self.model = model
        self.w_momentum = w_momentum
        self.w_weight_decay = w_weight_decay
        self.criterion = criterion or F.cross_entropy
        self.autocast = autocast or contextlib.nullcontext
        self.alphas = list(model.alphas())
        weight_ids = {id(p) for p in model.weights()}
        alpha_ids = {id(a) for a in self.alphas}
        if weight_ids & alpha_ids:
            raise ValueError("model.weights() and model.alphas() overlap; they must be disjoint")
        # Names let functional_call substitute the weights; the alphas stay the module's own.
        self.weight_names = [n for n, p in model.named_parameters() if id(p) in weight_ids]
        self.weights = [p for n, p in model.named_parameters() if id(p) in weight_ids]
        self.optimizer = torch.optim.Adam(self.alphas, lr=alpha_lr, betas=tuple(alpha_betas),
                                          weight_decay=alpha_weight_decay)

    # -- functional evaluation ----------------------------------------------------------
    def _loss(self, weights: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss of the model with `weights` substituted, on cloned buffers (running stats untouched)."""
        state = {n: b.clone() for n, b in self.model.named_buffers()}
        state.update(zip(self.weight_names, weights))
        return self.criterion(functional_call(self.model, state, (x,)), y)

    def _grad(self, loss: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        grads = torch.autograd.grad(loss, inputs, allow_unused=True)
        return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads)]

    def _check(self, loss: torch.Tensor, what: str) -> None:
        if not torch.isfinite(loss.detach()).all():
            raise NonFiniteLossError(f"non-finite {what} loss ({loss.item()}) in the architecture (alpha) step")

    # -- gradients ----------------------------------------------------------------------
    def virtual_weights(self, train_x, train_y, w_lr: float, w_optim: torch.optim.Optimizer) -> list[torch.Tensor]:
        """w' = w - xi * (grad_w L_train + mu * momentum_buffer + wd * w), as fresh leaf tensors."""
        weights = [w.detach().requires_grad_(True) for w in self.weights]
        loss = self._loss(weights, train_x, train_y)
        self._check(loss, "training")
        grads = self._grad(loss, weights)
        return sgd_lookahead(self.weights, weights, grads, w_lr, w_optim, self.w_momentum, self.w_weight_decay)

    def alpha_gradients(self, train_x, train_y, val_x, val_y, w_lr: float,
                        w_optim: torch.optim.Optimizer, order: int) -> tuple[list[torch.Tensor], float]:
        """The alpha (hyper)gradient and the validation loss, without changing anything."""
        if order == 1:
            weights = [w.detach() for w in self.weights]
            with self.autocast():
                loss = self._loss(weights, val_x, val_y)
            self._check(loss, "validation")
            return self._grad(loss, self.alphas), loss.item()
        if order != 2:
            raise ValueError(f"order must be 1 or 2, got {order!r}")
        w_prime = self.virtual_weights(train_x, train_y, w_lr, w_optim)
        loss = self._loss(w_prime, val_x, val_y)
        self._check(loss, "validation")
        grads = self._grad(loss, self.alphas + w_prime)
        d_alpha, d_w = grads[:len(self.alphas)], grads[len(self.alphas):]
        hessian = self.hessian_vector(d_w, train_x, train_y)
        return [da - w_lr * h for da, h in zip(d_alpha, hessian)], loss.item()

    def hessian_vector(self, vector: list[torch.Tensor], train_x, train_y) -> list[torch.Tensor]:
        """(grad_a L_train(w + eps v) - grad_a L_train(w - eps v)) / (2 eps), eps = 0.01 / ||v||."""
        norm = torch.sqrt(sum((v.double() ** 2).sum() for v in vector)).item()
        if norm == 0.0 or not math.isfinite(norm):
            return [torch.zeros_like(a) for a in self.alphas]
        eps = 0.01 / norm
        sides = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                shifted = [w.detach() + sign * eps * v for w, v in zip(self.weights, vector)]
            loss = self._loss(shifted, train_x, train_y)
            self._check(loss, "training")
            sides.append(self._grad(loss, self.alphas))
        return [(p - n) / (2.0 * eps) for p, n in zip(*sides)]

    def penalty_gradients(self, penalty: Callable, weight: float) -> list[torch.Tensor]:
        """The gradient of `weight * penalty(alphas)`, a regulariser of the alphas alone
        (e.g. β-DARTS' Beta-Decay, `emodarts_core.darts.collapse.beta_decay_loss`)."""
        with torch.enable_grad():
            return self._grad(weight * penalty(self.alphas), self.alphas)

    def step(self, train_x, train_y, val_x, val_y, w_lr: float, w_optim: torch.optim.Optimizer,
             order: int = 1, penalty: Callable | None = None, penalty_weight: float = 0.0) -> float:
        """One Adam step on the alphas; returns the validation loss it was computed from.

        With `penalty`, the alpha loss is L_val + penalty_weight * penalty(alphas); a
        penalty of the alphas alone adds its own gradient to the (hyper)gradient of L_val,
        whatever the order. Raises NonFiniteLossError (before any alpha changes) if a loss
        is not finite.
        """
        grads, val_loss = self.alpha_gradients(train_x, train_y, val_x, val_y, w_lr, w_optim, order)
        if penalty is not None and penalty_weight:
            grads = [g + p for g, p in zip(grads, self.penalty_gradients(penalty, penalty_weight))]
        if not all(torch.isfinite(g).all() for g in grads):
            raise NonFiniteLossError("non-finite alpha gradient in the architecture (alpha) step")
        self.optimizer.zero_grad(set_to_none=True)
        for alpha, g in zip(self.alphas, grads):
            alpha.grad = g.detach().to(alpha.dtype)
        self.optimizer.step()
        return val_loss

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)
