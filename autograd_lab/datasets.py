"""Small 2-D classification data sets, generated with numpy (no download, no scikit-learn).

Serves notebook 03 (an MLP on two moons in PyTorch) and notebook 08 (the same
on autograd_lab). Both functions are seeded: the same arguments always give
the same points, so losses can be compared between the two engines.
"""
from __future__ import annotations

import numpy as np


def two_moons(n: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles: x of shape (n, 2) float64, labels t (n,) int64 in {0, 1}.

    The upper moon is the half circle of radius 1 around (0, 0) (label 0); the
    lower one is the same half circle flipped and shifted to (1, 0.5) (label 1),
    so that neither class can be separated from the other by a straight line.
    Gaussian noise of standard deviation `noise` blurs both; the points come
    shuffled. (The construction of scikit-learn's make_moons.)
    """
    if n < 2:
        raise ValueError(f"two_moons needs n >= 2 points (one per moon), got {n}")
    rng = np.random.default_rng(seed)
    n_upper = n // 2
    n_lower = n - n_upper
    angle_upper = np.linspace(0.0, np.pi, n_upper)
    angle_lower = np.linspace(0.0, np.pi, n_lower)
    upper = np.stack([np.cos(angle_upper), np.sin(angle_upper)], axis=1)
    lower = np.stack([1.0 - np.cos(angle_lower), 0.5 - np.sin(angle_lower)], axis=1)
    x = np.concatenate([upper, lower]) + rng.normal(scale=noise, size=(n, 2))
    t = np.concatenate([np.zeros(n_upper, dtype=np.int64), np.ones(n_lower, dtype=np.int64)])
    order = rng.permutation(n)
    return x[order], t[order]


def spiral(n_per_class: int = 100, n_classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class: x (n_per_class * n_classes, 2) float64, t int64.

    Arm j starts at the centre and winds outwards, turned by 4j radians from
    the others (DeZero's `get_spiral`); a little noise on the angle. Shuffled.
    """
    if n_per_class < 1 or n_classes < 1:
        raise ValueError(f"spiral needs n_per_class >= 1 and n_classes >= 1, got {n_per_class}, {n_classes}")
    rng = np.random.default_rng(seed)
    rate = np.arange(n_per_class) / n_per_class  # 0 at the centre .. almost 1 at the rim
    xs, ts = [], []
    for j in range(n_classes):
        theta = 4.0 * j + 4.0 * rate + rng.normal(scale=0.2, size=n_per_class)
        xs.append(np.stack([rate * np.sin(theta), rate * np.cos(theta)], axis=1))
        ts.append(np.full(n_per_class, j, dtype=np.int64))
    x, t = np.concatenate(xs), np.concatenate(ts)
    order = rng.permutation(len(x))
    return x[order], t[order]
