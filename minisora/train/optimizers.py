"""The optimizers of the training loop: AdamW (Loshchilov & Hutter 2019), and Muon (Jordan et al. 2024) for the
transformer blocks' weight matrices with AdamW for every other parameter.

Muon takes the momentum of a weight matrix's gradient and replaces it by the nearest semi-orthogonal matrix (its
singular values set to about 1, its singular vectors kept) before stepping: every direction the gradient moves the
matrix in moves at the same rate, where Adam's per-entry scaling lets a few dominant directions take the step. The
orthogonalisation is five steps of a Newton-Schulz iteration, only matrix products. Muon is for hidden layers: the
patch and caption embeddings, the output projection, biases, norms and lookup tables stay with AdamW. The update of
a W (A x B) is scaled by 0.2 sqrt(max(A, B)), which gives it about AdamW's root-mean-square size, so Muon takes
AdamW's learning rate and weight decay (Liu et al. 2025, "Muon is Scalable for LLM Training").

`build_optimizer(model, name, learning_rate, weight_decay)` is what `train_loop` calls.
"""
import math
from typing import Iterable, List, Tuple

import torch
from torch import nn

OPTIMIZERS = ("adamw", "muon")
# the quintic's coefficients (a, b, c), chosen by Jordan et al. for a steep rise at 0 in five steps
NEWTON_SCHULZ_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz_orthogonalize(matrix: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """About U V^T for matrix = U S V^T (..., A, B), a batch of matrices at once:
    X <- a X + (b X X^T + c (X X^T)^2) X, from X = matrix / ||matrix||_F. On each singular value s the iteration is
    the scalar polynomial s <- a s + b s^3 + c s^5, which carries every s in (0, 1] to between about 0.7 and 1.2 in
    five steps (not exactly 1: a steeper start at s near 0 served training better, Jordan et al. 2024). Computed in
    float32 (float64 for float64 matrices)."""
    a, b, c = NEWTON_SCHULZ_COEFFICIENTS
    wide = matrix.shape[-2] <= matrix.shape[-1]
    x = matrix.to(torch.promote_types(matrix.dtype, torch.float32))
    x = x if wide else x.mT  # (rows <= columns): X X^T is the smaller Gram matrix
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)  # ||X||_F = 1: every singular value is at most 1
    for _ in range(steps):
        gram = x @ x.mT
        # X <- a X + (b G + c G^2) X,  G = X X^T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x if wide else x.mT).to(matrix.dtype)


def muon_matrices(model: nn.Module) -> List[nn.Parameter]:
    """The weights Muon updates: the matrices of the nn.Linear layers inside the model's transformer blocks (a
    module path containing 'blocks.'), not the embeddings or the output layer around them."""
    return [module.weight for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and "blocks." in f"{name}." and module.weight.requires_grad]


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon on the parameter groups marked muon=True, AdamW on the others, with one learning rate and schedule."""

    def __init__(self, groups: Iterable[dict], lr: float, weight_decay: float = 0.01, momentum: float = 0.95,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(list(groups), dict(lr=lr, weight_decay=weight_decay, momentum=momentum, betas=betas, eps=eps,
                                            muon=False))

    @torch.no_grad()
    def step(self, closure=None):
        """One step of every group. Each elementwise update runs as one `torch._foreach_*` call over the group's
        tensors (one kernel launch for all of them on a GPU, not one per tensor; the same arithmetic, as torch's own
        optimizers do by default)."""
        for group in self.param_groups:
            lr, decay = group["lr"], group["weight_decay"]
            parameters = [parameter for parameter in group["params"] if parameter.grad is not None]
            if not parameters:
                continue
            # decoupled weight decay: theta <- theta (1 - lr lambda)
            torch._foreach_mul_(parameters, 1 - lr * decay)
            if group["muon"]:
                self.muon_update(parameters, lr, group["momentum"])
            else:
                self.adam_update(parameters, lr, group["betas"], group["eps"])

    def muon_update(self, parameters, lr, momentum):
        """Orthogonalise the matrices of one shape together (a batched Newton-Schulz: one call per shape, not one
        per matrix, which costs more in overhead than in arithmetic at these sizes)."""
        buffers = []
        for parameter in parameters:
            if "momentum" not in self.state[parameter]:
                self.state[parameter]["momentum"] = torch.zeros_like(parameter)
            buffers.append(self.state[parameter]["momentum"])
        gradients = [parameter.grad for parameter in parameters]
        # B_t = mu B_{t-1} + (1 - mu) g_t;  Nesterov: look ahead to (1 - mu) g_t + mu B_t
        torch._foreach_lerp_(buffers, gradients, 1 - momentum)
        lookahead = torch._foreach_lerp(gradients, buffers, momentum)
        by_shape = {}
        for parameter, direction in zip(parameters, lookahead):
            by_shape.setdefault(parameter.shape, []).append((parameter, direction))
        for shape, pairs in by_shape.items():
            directions = newton_schulz_orthogonalize(torch.stack([direction for _, direction in pairs]))
            # theta <- theta - lr 0.2 sqrt(max(A, B)) O_t
            torch._foreach_add_([parameter for parameter, _ in pairs], list(directions.unbind()),
                                alpha=-lr * 0.2 * math.sqrt(max(shape)))

    def adam_update(self, parameters, lr, betas, eps):
        """AdamW's step on the parameters, those with the same number of steps taken (their bias correction) at once."""
        by_step = {}
        for parameter in parameters:
            state = self.state[parameter]
            if "step" not in state:
                state["step"] = 0
                state["mean"] = torch.zeros_like(parameter)
                state["square"] = torch.zeros_like(parameter)
            state["step"] += 1
            by_step.setdefault(state["step"], []).append(parameter)
        (beta1, beta2) = betas
        for step, chosen in by_step.items():
            means = [self.state[parameter]["mean"] for parameter in chosen]
            squares = [self.state[parameter]["square"] for parameter in chosen]
            gradients = [parameter.grad for parameter in chosen]
            # m_t = beta1 m_{t-1} + (1 - beta1) g;  v_t = beta2 v_{t-1} + (1 - beta2) g^2
            torch._foreach_lerp_(means, gradients, 1 - beta1)
            torch._foreach_mul_(squares, beta2)
            torch._foreach_addcmul_(squares, gradients, gradients, value=1 - beta2)
            # theta <- theta - lr m_t / (1 - beta1^t) / (sqrt(v_t / (1 - beta2^t)) + eps)
            denominators = torch._foreach_sqrt(squares)
            torch._foreach_div_(denominators, math.sqrt(1 - beta2 ** step))
            torch._foreach_add_(denominators, eps)
            torch._foreach_addcdiv_(chosen, means, denominators, value=-lr / (1 - beta1 ** step))


def build_optimizer(model: nn.Module, name: str, learning_rate: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW on every parameter ("adamw"), or Muon on `muon_matrices(model)` and AdamW on the rest ("muon")."""
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    if name != "muon":
        raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")
    matrices = muon_matrices(model)
    if not matrices:
        raise ValueError(f"optimizer 'muon' found no transformer blocks (Linear layers under a 'blocks' module) in "
                         f"{type(model).__name__}; use --optimizer=adamw")
    chosen = {id(parameter) for parameter in matrices}
    others = [parameter for parameter in model.parameters() if id(parameter) not in chosen]
    return MuonWithAdamW([dict(params=matrices, muon=True), dict(params=others, muon=False)],
                         lr=learning_rate, weight_decay=weight_decay)
