"""EML trees: the genome of the EML space and its exact, vectorised evaluation.

A tree is a plain tuple of ints in prefix order: `EML` (0) is the binary node eml(a, b) = exp(a) - Log(b), `ONE` (1)
is the constant 1, and `2 + i` is input variable i. So `(0, 2, 1)` is eml(x0, 1) = exp(x0), and the grammar
S -> 1 | x_i | eml(S, S) of the paper is exactly the set of well-formed tuples.

Evaluation is in complex128 with these extended-real semantics (the paper's short trees for -x and 1/x need them):

* Log is the principal branch, Im in (-pi, pi]. A zero imaginary part is read as +0, so Log of a negative real is
  ln|y| + i*pi whatever the sign bit of the zero (numpy's log would give -i*pi for an imaginary part of -0.0, which
  float rounding produces; this is the "i may come out as -i" trap of the paper).
* Log(0) = -inf (real), exp(-inf) = 0, exp(+inf) = +inf, Log(+-inf) = +inf (+ i*pi for -inf).
* exp of a real argument stays real (imaginary part exactly 0), so real data stays real until a Log of a negative.
* exp overflows to inf past Re 709.78; inf - inf, 0 * inf and the like give NaN, and NaN propagates. Callers decide
  what a NaN or a non-real output means (the fit objective scores the tree as failed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EML = 0
ONE = 1
VAR0 = 2

Tree = tuple[int, ...]


def var(i: int) -> int:
    """The code of input variable i."""
    return VAR0 + i


def node(a: Tree, b: Tree) -> Tree:
    """eml(a, b) as a prefix tuple."""
    return (EML, *a, *b)


def subtree_end(tree: Sequence[int], start: int) -> int:
    """Index one past the subtree that begins at `start`."""
    need = 1
    i = start
    while need:
        need += 1 if tree[i] == EML else -1
        i += 1
    return i


def is_valid(tree: Sequence[int], n_vars: int) -> bool:
    """A well-formed prefix tree over `n_vars` variables."""
    if not tree:
        return False
    need = 1
    for i, code in enumerate(tree):
        if code < 0 or code >= VAR0 + n_vars:
            return False
        need += 1 if code == EML else -1
        if need == 0:
            return i == len(tree) - 1
    return False


def depths(tree: Sequence[int]) -> list[int]:
    """Depth of each node (root 0), in prefix order."""
    out = []
    stack = [0]
    for code in tree:
        d = stack.pop()
        out.append(d)
        if code == EML:
            stack += [d + 1, d + 1]
    return out


def depth(tree: Sequence[int]) -> int:
    """Height of the tree: 0 for a leaf, 1 for eml(leaf, leaf)."""
    return max(depths(tree))


def children(tree: Tree) -> tuple[Tree, Tree]:
    """The two operand subtrees of a tree whose root is an eml node."""
    assert tree[0] == EML
    mid = subtree_end(tree, 1)
    return tree[1:mid], tree[mid:]


def exp_ext(z: np.ndarray) -> np.ndarray:
    """exp on complex128 with exp(-inf) = 0, exp(+inf) = inf, and real in -> real out (no 0 * inf = NaN)."""
    re, im = z.real, z.imag
    mag = np.exp(re)
    real_in = im == 0
    cos = np.where(real_in, 1.0, np.cos(im))
    sin = np.where(real_in, 0.0, np.sin(im))
    out_re = np.where(real_in, mag, mag * cos)
    out_im = np.where(real_in | (mag == 0), 0.0, mag * sin)
    out_re = np.where(mag == 0, 0.0, out_re)
    return out_re + 1j * out_im


def log_ext(z: np.ndarray) -> np.ndarray:
    """Principal Log on complex128 with Log(0) = -inf and a zero imaginary part always read as +0."""
    re = z.real
    im = np.where(z.imag == 0, 0.0, z.imag)  # -0.0 -> +0.0: Log(-a) = ln a + i*pi
    return np.log(np.hypot(re, im)) + 1j * np.arctan2(im, re)


def eml(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """eml(a, b) = exp(a) - Log(b) under the extended semantics above."""
    return exp_ext(a) - log_ext(b)


def evaluate(tree: Sequence[int], X: np.ndarray) -> np.ndarray:
    """Values of `tree` at the rows of `X` (n, d): complex128 array of shape (n,). Never warns; may hold inf/NaN."""
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    stack: list[np.ndarray] = []
    with np.errstate(all="ignore"):
        for code in reversed(tree):
            if code == EML:
                a = stack.pop()
                b = stack.pop()
                stack.append(eml(a, b))
            elif code == ONE:
                stack.append(np.ones(n, dtype=np.complex128))
            else:
                stack.append(X[:, code - VAR0].astype(np.complex128))
    assert len(stack) == 1, "malformed tree"
    return stack[0]


def real_part(values: np.ndarray, tolerance: float = 1e-9) -> tuple[np.ndarray | None, str | None]:
    """The real output of a tree, or (None, reason) when it is not finite or not real within `tolerance`
    (|Im| <= tolerance * max(1, |Re|) at every point)."""
    if not np.all(np.isfinite(values)):
        bad = int(np.sum(~np.isfinite(values)))
        return None, f"non-finite output at {bad} of {values.size} points"
    im = np.abs(values.imag)
    limit = tolerance * np.maximum(1.0, np.abs(values.real))
    if np.any(im > limit):
        return None, f"complex output (max |Im| {float(im.max()):.3g})"
    return values.real.copy(), None


def to_string(tree: Sequence[int], variables: Sequence[str]) -> str:
    """Nested infix form, e.g. 'eml(x, 1)'."""
    out: list[str] = []
    for code in reversed(tree):
        if code == EML:
            a = out.pop()
            b = out.pop()
            out.append(f"eml({a}, {b})")
        elif code == ONE:
            out.append("1")
        else:
            out.append(variables[code - VAR0])
    return out[0]


def random_tree(rng: np.random.Generator, n_vars: int, max_depth: int, full: bool = False,
                leaf_one: float = 0.5) -> Tree:
    """A random tree of height <= max_depth (exactly max_depth on every branch when `full`), DEAP ramped style.

    leaf_one: probability that a leaf is the constant 1 rather than a variable.
    """
    def leaf() -> int:
        if n_vars == 0 or rng.random() < leaf_one:
            return ONE
        return var(int(rng.integers(n_vars)))

    def grow(d: int) -> list[int]:
        if d == 0 or (not full and rng.random() < 0.3):
            return [leaf()]
        return [EML, *grow(d - 1), *grow(d - 1)]

    return tuple(grow(max_depth))
