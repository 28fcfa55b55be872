"""The paper's gradient method: a complete EML tree of height `depth` as a trainable circuit, fitted with Adam
from many random restarts at once, then snapped to a discrete tree.

Each of the two inputs of every node is a softmax mixture over {1, x_1..x_n, the child node below} (the bottom
level has no child). Training minimises mean |Re f - y|^2 + mean |Im f|^2 in complex128; in the second half of
the schedule an entropy penalty pushes every softmax towards one-hot, then each choice is snapped to its argmax
and the snapped tree is scored exactly with `tree.evaluate`. All restarts train together as one batched tensor
(restarts x nodes x samples), so 64 restarts cost about as much as one on a CPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from spaces.eml.tree import EML, ONE, VAR0, Tree, evaluate, real_part

# Training-time guards only (the snapped tree is scored with the exact semantics): exp arguments are clamped so
# one restart cannot overflow, and |z| is floored before Log so its gradient stays finite.
_EXP_CLAMP = 30.0
_LOG_FLOOR = 1e-30


@dataclass(frozen=True)
class GradientSettings:
    """depth: circuit height (2**depth - 1 eml nodes). restarts: random initialisations trained together.
    steps: Adam steps per restart. learning_rate: Adam step size. entropy: weight of the one-hot push in the
    second half. seconds: wall-clock cap for the whole call (None = no cap)."""

    depth: int = 3
    restarts: int = 64
    steps: int = 400
    learning_rate: float = 0.1
    entropy: float = 0.02
    init_scale: float = 1.0
    seconds: float | None = None


def _exp(z: torch.Tensor) -> torch.Tensor:
    re = torch.clamp(z.real, max=_EXP_CLAMP)
    return torch.exp(torch.complex(re, z.imag))


def _log(z: torch.Tensor) -> torch.Tensor:
    mag = torch.clamp(torch.abs(z), min=_LOG_FLOOR)
    return torch.complex(torch.log(mag), torch.angle(z))


class Circuit:
    """Logits of a complete EML circuit for `restarts` independent copies; level 0 is the root."""

    def __init__(self, depth: int, n_vars: int, restarts: int, generator: torch.Generator, scale: float):
        self.depth, self.n_vars = depth, n_vars
        self.logits = []
        for level in range(depth):
            options = 1 + n_vars + (1 if level < depth - 1 else 0)
            w = torch.randn(restarts, 2 ** level, 2, options, generator=generator, dtype=torch.float64) * scale
            self.logits.append(w.requires_grad_(True))

    def forward(self, leaves: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs (restarts, n) complex and the mean softmax entropy per restart. leaves: (1 + n_vars, n)."""
        below = None
        entropy = 0.0
        for level in reversed(range(self.depth)):
            p = torch.softmax(self.logits[level] / temperature, dim=-1)            # (R, m, 2, k)
            entropy = entropy - (p * torch.log(p + 1e-12)).sum(-1).mean(dim=(1, 2))
            pc = p.to(torch.complex128)
            mixed = torch.einsum("rmsk,kn->rmsn", pc[..., : 1 + self.n_vars], leaves.to(torch.complex128))
            if below is not None:                                                   # child of slot s is 2j + s
                r, m2, n = below.shape
                child = below.reshape(r, m2 // 2, 2, n)
                mixed = mixed + pc[..., -1:] * child
            below = _exp(mixed[:, :, 0]) - _log(mixed[:, :, 1])
        return below[:, 0], entropy / self.depth

    def snap(self, restart: int) -> Tree:
        """The discrete tree chosen by the argmax of every softmax of one restart (unused subtrees dropped)."""
        choice = [w[restart].argmax(-1).tolist() for w in self.logits]

        def build(level: int, j: int) -> list[int]:
            out = [EML]
            for s in (0, 1):
                c = choice[level][j][s]
                if c == 0:
                    out.append(ONE)
                elif c <= self.n_vars:
                    out.append(VAR0 + c - 1)
                else:
                    out += build(level + 1, 2 * j + s)
            return out

        return tuple(build(0, 0))


def fit_circuits(X: np.ndarray, y: np.ndarray, settings: GradientSettings, seed: int) -> list[tuple[float, Tree]]:
    """Train, snap, and score: distinct snapped trees as (rmse on X, y; inf when failed), best first."""
    threads = torch.get_num_threads()
    # The tensors are tiny (restarts x 2**depth x samples): one thread is fastest, and several threads spin-wait
    # against each other when other processes share the cores (100x slower measured on a busy 2-core machine).
    torch.set_num_threads(1)
    try:
        return _fit_circuits(X, y, settings, seed)
    finally:
        torch.set_num_threads(threads)


def _fit_circuits(X: np.ndarray, y: np.ndarray, settings: GradientSettings, seed: int) -> list[tuple[float, Tree]]:
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(int(seed))
    n, d = X.shape
    leaves = torch.from_numpy(np.vstack([np.ones((1, n)), X.T]).astype(np.float64))
    target = torch.from_numpy(np.asarray(y, dtype=np.float64))
    circuit = Circuit(settings.depth, d, settings.restarts, generator, settings.init_scale)
    optimiser = torch.optim.Adam(circuit.logits, lr=settings.learning_rate)
    for step in range(settings.steps):
        if settings.seconds is not None and time.perf_counter() - start > settings.seconds:
            break
        out, entropy = circuit.forward(leaves)
        per_restart = ((out.real - target) ** 2).mean(-1) + (out.imag ** 2).mean(-1)
        per_restart = torch.where(torch.isfinite(per_restart), per_restart, torch.zeros_like(per_restart))
        loss = torch.log1p(per_restart).sum()   # log1p: one exploding restart does not swamp the rest
        if step >= settings.steps // 2:
            loss = loss + settings.entropy * (step / settings.steps) * entropy.sum() * settings.restarts
        optimiser.zero_grad()
        loss.backward()
        for w in circuit.logits:
            w.grad.nan_to_num_(0.0, 0.0, 0.0)
        optimiser.step()
    scored: dict[Tree, float] = {}
    for r in range(settings.restarts):
        tree = circuit.snap(r)
        if tree not in scored:
            scored[tree] = tree_rmse(tree, X, y)
    return sorted(((v, t) for t, v in scored.items()), key=lambda p: (p[0], len(p[1])))


def tree_rmse(tree: Tree, X: np.ndarray, y: np.ndarray) -> float:
    """Root-mean-square error of a tree's real output; inf when its output is not finite and real."""
    values, _ = real_part(evaluate(tree, X))
    if values is None:
        return math.inf
    with np.errstate(all="ignore"):
        rmse = float(np.sqrt(np.mean((values - y) ** 2)))
    return rmse if math.isfinite(rmse) else math.inf
