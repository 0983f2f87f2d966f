"""Optimizers, layers and data sets, and a whole training run, against PyTorch (float64)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from autograd_lab import Parameter, Variable
from autograd_lab import functions as F
from autograd_lab.datasets import spiral, two_moons
from autograd_lab.layers import MLP, Layer, Linear, Model
from autograd_lab.optimizers import SGD, Adam, MomentumSGD

OPTIMIZERS = {
    "SGD": (lambda: SGD(lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    "MomentumSGD": (lambda: MomentumSGD(lr=0.05, momentum=0.8), lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8)),
    "Adam": (lambda: Adam(lr=0.01), lambda ps: torch.optim.Adam(ps, lr=0.01)),
    "Adam (other betas)": (lambda: Adam(lr=0.3, beta1=0.5, beta2=0.9, eps=1e-6),
                           lambda ps: torch.optim.Adam(ps, lr=0.3, betas=(0.5, 0.9), eps=1e-6)),
}


# ----------------------------------------------------------------------
# Optimizers, step for step
# ----------------------------------------------------------------------
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_matches_torch_step_for_step(name: str) -> None:
    make_ours, make_theirs = OPTIMIZERS[name]
    rng = np.random.default_rng(0)
    initial = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
    params = [Parameter(a.copy()) for a in initial]
    t_params = [torch.tensor(a.copy(), requires_grad=True) for a in initial]
    optimizer, t_optimizer = make_ours().setup(params), make_theirs(t_params)

    for _ in range(15):
        grads = [rng.standard_normal(a.shape) * 10 ** rng.uniform(-3, 1) for a in initial]
        for p, tp, g in zip(params, t_params, grads):
            p.grad, tp.grad = Variable(g), torch.tensor(g)
        optimizer.update()
        t_optimizer.step()
        for p, tp in zip(params, t_params):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_parameters_without_a_gradient_are_left_alone() -> None:
    a, b = Parameter(np.ones(2)), Parameter(np.ones(2))
    a.grad = Variable(np.ones(2))
    optimizer = Adam(lr=0.1).setup([a, b])
    optimizer.update()
    assert b.data.tolist() == [1.0, 1.0] and a.data.tolist() != [1.0, 1.0]
    assert b not in optimizer.state


def test_pytorch_names_step_and_zero_grad() -> None:
    model = Linear(2, 3, seed=0)
    optimizer = SGD(lr=0.5).setup(model)
    W0 = model.W.data.copy()
    F.sum(model(np.ones((1, 3)))).backward()
    optimizer.step()
    np.testing.assert_allclose(model.W.data, W0 - 0.5)
    optimizer.zero_grad()
    assert all(p.grad is None for p in model.params())


def test_optimizer_errors() -> None:
    with pytest.raises(RuntimeError, match=r"call SGD\(...\).setup\(model\) before update\(\)"):
        SGD().update()
    with pytest.raises(TypeError, match=r"wrap a single one as \[x\]"):
        SGD().setup(Variable(1.0))


# ----------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------
class TwoLayer(Model):
    def __init__(self) -> None:
        super().__init__()
        self.first = Linear(4, 2, seed=1)
        self.scale = Parameter(np.array(2.0), name="scale")
        self.not_a_param = Variable(1.0)
        self.second = Linear(1, 4, nobias=True, seed=2)

    def forward(self, x):
        return self.second(F.relu(self.first(x))) * self.scale


def test_layers_collect_parameters_in_order() -> None:
    model = TwoLayer()
    params = list(model.params())
    assert params == [model.first.W, model.first.b, model.scale, model.second.W]
    assert model.second.b is None
    F.sum(model(np.ones((3, 2)))).backward()
    assert all(p.grad is not None for p in params)
    model.cleargrads()
    assert all(p.grad is None for p in params)


def test_layer_subclasses_must_call_init() -> None:
    class Forgot(Layer):
        def __init__(self) -> None:
            self.W = Parameter(np.ones(2))

    with pytest.raises(RuntimeError, match=r"Forgot.__init__ must call super\(\).__init__\(\) first"):
        Forgot()


def test_linear_initialisation() -> None:
    layer = Linear(3, 200, seed=0)
    assert layer.W.shape == (200, 3) and layer.b.data.tolist() == [0.0] * 3
    assert layer.W.data.std() == pytest.approx(np.sqrt(1 / 200), rel=0.1)
    np.testing.assert_array_equal(Linear(3, 200, seed=0).W.data, layer.W.data)
    assert not np.array_equal(Linear(3, 200, seed=1).W.data, layer.W.data)
    assert repr(layer.b) == "parameter([0. 0. 0.], name='b')"
    with pytest.raises(ValueError, match="either seed= or rng="):
        Linear(3, seed=0, rng=np.random.default_rng())


def test_linear_without_in_size_initialises_on_first_call() -> None:
    layer = Linear(3, seed=0)
    assert layer.W.data is None
    y = layer(np.ones((5, 4)))
    assert y.shape == (5, 3) and layer.W.shape == (4, 3)
    np.testing.assert_array_equal(layer.W.data, Linear(3, 4, seed=0).W.data)


def test_mlp_is_the_same_eager_or_lazy_for_a_seed() -> None:
    eager = MLP((10, 10, 1), activation=F.tanh, in_size=2, seed=0)
    lazy = MLP((10, 10, 1), activation=F.tanh, seed=0)
    x = np.random.default_rng(5).standard_normal((4, 2))
    np.testing.assert_array_equal(eager(x).data, lazy(x).data)
    shapes = [p.shape for p in eager.params()]
    assert shapes == [(2, 10), (10,), (10, 10), (10,), (10, 1), (1,)]


# ----------------------------------------------------------------------
# Data sets
# ----------------------------------------------------------------------
def test_two_moons() -> None:
    x, t = two_moons(n=201, noise=0.1, seed=3)
    assert x.shape == (201, 2) and x.dtype == np.float64 and t.shape == (201,) and t.dtype == np.int64
    assert set(np.unique(t)) == {0, 1} and np.sum(t == 0) == 100
    np.testing.assert_array_equal(two_moons(201, 0.1, 3)[0], x)
    assert not np.array_equal(two_moons(201, 0.1, 4)[0], x)
    clean, labels = two_moons(n=100, noise=0.0)
    upper, lower = clean[labels == 0], clean[labels == 1]
    np.testing.assert_allclose(np.hypot(*upper.T), 1.0)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1.0)
    assert upper[:, 1].min() >= 0 and lower[:, 1].max() <= 0.5


def test_spiral() -> None:
    x, t = spiral(n_per_class=50, n_classes=4, seed=1)
    assert x.shape == (200, 2) and x.dtype == np.float64 and t.dtype == np.int64
    assert np.bincount(t).tolist() == [50] * 4
    np.testing.assert_array_equal(spiral(50, 4, 1)[0], x)
    assert np.abs(x).max() <= 1.0


# ----------------------------------------------------------------------
# A whole training run: the same network in both engines
# ----------------------------------------------------------------------
def torch_copy(model: MLP) -> torch.nn.Sequential:
    modules = []
    for i, layer in enumerate(model.layers):
        linear = torch.nn.Linear(*layer.W.shape).double()
        with torch.no_grad():
            linear.weight.copy_(torch.tensor(layer.W.data.T))  # ours is (in, out), PyTorch's (out, in)
            linear.bias.copy_(torch.tensor(layer.b.data))
        modules.append(linear)
        if i < len(model.layers) - 1:
            modules.append(torch.nn.Tanh())
    return torch.nn.Sequential(*modules)


@pytest.mark.parametrize(
    "loss_name, make_optimizers",
    [
        ("mse", lambda ps, tps: (SGD(lr=0.1).setup(ps), torch.optim.SGD(tps, lr=0.1))),
        ("cross_entropy", lambda ps, tps: (Adam(lr=0.01).setup(ps), torch.optim.Adam(tps, lr=0.01))),
    ],
)
def test_mlp_on_two_moons_matches_torch(loss_name, make_optimizers) -> None:
    x, t = two_moons(n=100, noise=0.1, seed=0)
    out = 1 if loss_name == "mse" else 2
    model = MLP((10, 10, out), activation=F.tanh, in_size=2, seed=0)
    torch_model = torch_copy(model)
    optimizer, t_optimizer = make_optimizers(model, torch_model.parameters())
    tx, tt = torch.tensor(x), torch.tensor(t)

    losses, t_losses = [], []
    for _ in range(100):
        y = model(x)
        loss = F.mean_squared_error(y, t.reshape(-1, 1)) if loss_name == "mse" else F.softmax_cross_entropy(y, t)
        model.cleargrads()
        loss.backward()
        optimizer.update()
        losses.append(float(loss.data))

        ty = torch_model(tx)
        if loss_name == "mse":
            t_loss = torch.nn.functional.mse_loss(ty, tt.double().reshape(-1, 1))
        else:
            t_loss = torch.nn.functional.cross_entropy(ty, tt)
        t_optimizer.zero_grad()
        t_loss.backward()
        t_optimizer.step()
        t_losses.append(t_loss.item())

    np.testing.assert_allclose(losses, t_losses, rtol=1e-6, atol=1e-9)
    assert losses[-1] < 0.6 * losses[0]  # and it does learn
