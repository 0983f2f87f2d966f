"""Optimizers, layers and data sets, and a whole training run, against PyTorch (float64)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from autograd_lab import Parameter, Variable
from autograd_lab import functions as F
from autograd_lab.datasets import spiral, two_moons
from autograd_lab.layers import MLP, Layer, Linear, Model
from autograd_lab.optimizers import SGD, Adam, ClipGrad, MomentumSGD, WeightDecay


def clipped_torch_sgd(params, lr: float, max_norm: float) -> torch.optim.Optimizer:
    """torch.optim.SGD with clip_grad_norm_ before each step: what SGD + the ClipGrad hook do."""
    optimizer = torch.optim.SGD(params, lr=lr)
    step = optimizer.step

    def clipped_step() -> None:
        torch.nn.utils.clip_grad_norm_(optimizer.param_groups[0]["params"], max_norm)
        step()

    optimizer.step = clipped_step
    return optimizer


OPTIMIZERS = {
    "SGD": (lambda: SGD(lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    "MomentumSGD": (lambda: MomentumSGD(lr=0.05, momentum=0.8), lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8)),
    "Adam": (lambda: Adam(lr=0.01), lambda ps: torch.optim.Adam(ps, lr=0.01)),
    "Adam (other betas)": (lambda: Adam(lr=0.3, beta1=0.5, beta2=0.9, eps=1e-6),
                           lambda ps: torch.optim.Adam(ps, lr=0.3, betas=(0.5, 0.9), eps=1e-6)),
    "Adam (DeZero's alpha)": (lambda: Adam(alpha=0.02), lambda ps: torch.optim.Adam(ps, lr=0.02)),
    "SGD + WeightDecay": (lambda: SGD(lr=0.1).add_hook(WeightDecay(0.05)),
                          lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.05)),
    "MomentumSGD + WeightDecay": (lambda: MomentumSGD(lr=0.05).add_hook(WeightDecay(0.01)),
                                  lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01)),
    "Adam + WeightDecay": (lambda: Adam(0.01).add_hook(WeightDecay(0.1)),
                           lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1)),
    "SGD + ClipGrad": (lambda: SGD(lr=0.1).add_hook(ClipGrad(1.0)), lambda ps: clipped_torch_sgd(ps, 0.1, 1.0)),
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


def test_hooks_see_the_parameters_with_gradients_before_the_update() -> None:
    a, b = Parameter(np.ones(2)), Parameter(np.ones(2))
    a.grad = Variable(np.full(2, 3.0))
    seen = []
    optimizer = SGD(lr=1.0).setup([a, b])
    optimizer.add_hook(lambda params: seen.append([(p, p.data.tolist()) for p in params]))
    optimizer.update()
    assert seen == [[(a, [1.0, 1.0])]]  # only a has a gradient; its value before the step
    assert a.data.tolist() == [-2.0, -2.0]


def test_weight_decay_on_gradients_from_one_add_counts_once() -> None:
    """a + b gives both the same upstream gradient: an in-place hook once added its decay to both through one array."""
    a, b = Parameter(np.ones(2)), Parameter(np.full(2, 2.0))
    F.sum(a + b).backward()
    SGD(lr=1.0).setup([a, b]).add_hook(WeightDecay(0.5)).update()
    np.testing.assert_array_equal(a.data, [1.0 - (1.0 + 0.5), 1.0 - (1.0 + 0.5)])
    np.testing.assert_array_equal(b.data, [2.0 - (1.0 + 1.0), 2.0 - (1.0 + 1.0)])


def test_clip_grad_leaves_small_gradients_alone() -> None:
    a = Parameter(np.zeros(2))
    a.grad = Variable(np.array([0.3, 0.4]))  # norm 0.5
    ClipGrad(1.0)([a])
    np.testing.assert_array_equal(a.grad.data, [0.3, 0.4])
    ClipGrad(0.25)([a])
    np.testing.assert_allclose(a.grad.data, [0.15, 0.2], rtol=1e-5)


def test_adam_takes_alpha_or_lr() -> None:
    assert Adam().alpha == Adam().lr == 0.001
    assert Adam(0.1).lr == Adam(lr=0.1).alpha == Adam(alpha=0.1, lr=0.1).alpha == 0.1
    optimizer = Adam(alpha=0.1)
    optimizer.lr = 0.5  # a schedule written with PyTorch's name
    assert optimizer.alpha == 0.5
    with pytest.raises(ValueError, match=r"Adam got alpha=0.1 and lr=0.2: they are the same step size"):
        Adam(alpha=0.1, lr=0.2)


def test_optimizer_errors() -> None:
    with pytest.raises(RuntimeError, match=r"call SGD\(...\).setup\(model\) before update\(\)"):
        SGD().update()
    with pytest.raises(TypeError, match=r"wrap a single one as \[x\]"):
        SGD().setup(Variable(1.0))
    with pytest.raises(TypeError, match=r"add_hook\(\) takes a function of the list of parameters, got float"):
        SGD().add_hook(0.1)


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


def test_linear_layer_takes_batch_axes_like_torch() -> None:
    layer = Linear(3, seed=0)
    x = np.random.default_rng(1).standard_normal((2, 5, 4))
    y = layer(x)
    assert y.shape == (2, 5, 3) and layer.W.shape == (4, 3)
    torch_layer = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        torch_layer.weight.copy_(torch.tensor(layer.W.data.T))
        torch_layer.bias.copy_(torch.tensor(layer.b.data))
    gy = np.random.default_rng(2).standard_normal(y.shape)
    y.grad = Variable(gy)
    y.backward()
    torch_layer(torch.tensor(x)).backward(torch.tensor(gy))
    np.testing.assert_allclose(layer.W.grad.data, torch_layer.weight.grad.numpy().T, rtol=1e-12)
    np.testing.assert_allclose(layer.b.grad.data, torch_layer.bias.grad.numpy(), rtol=1e-12)


def test_save_and_load_weights(tmp_path) -> None:
    model = TwoLayer()
    path = tmp_path / "two_layer.npz"
    model.save_weights(path)
    assert [p.name for p in tmp_path.iterdir()] == ["two_layer.npz"]  # no temporary file left behind
    assert sorted(np.load(path).files) == ["first/W", "first/b", "scale", "second/W"]

    other = TwoLayer()
    for param in other.params():
        param.data = param.data + 1.0
    other.load_weights(path)
    for ours, theirs in zip(model.params(), other.params()):
        np.testing.assert_array_equal(ours.data, theirs.data)
    lazy = MLP((10, 1))
    MLP((10, 1), in_size=2, seed=3).save_weights(tmp_path / "mlp.npz")
    lazy.load_weights(tmp_path / "mlp.npz")  # weights not created yet take the file's shapes
    assert lazy(np.ones((4, 2))).shape == (4, 1)


def test_load_weights_that_do_not_fit_changes_nothing_and_lists_every_difference(tmp_path) -> None:
    MLP((10, 3), in_size=2).save_weights(tmp_path / "w.npz")
    model = MLP((10, 10, 3), in_size=4)
    before = [p.data.copy() for p in model.params()]
    with pytest.raises(ValueError) as info:
        model.load_weights(tmp_path / "w.npz")
    message = str(info.value)
    assert "the file does not fit MLP: l2/W is missing from the file; l2/b is missing from the file; " in message
    assert "l0/W has shape (2, 10) in the file but (4, 10) here" in message
    assert "l1/W has shape (10, 3) in the file but (10, 10) here" in message
    assert message.endswith("Load weights saved from a model built the same way (same layers and sizes)")
    assert all(np.array_equal(b, p.data) for b, p in zip(before, model.params()))
    with pytest.raises(ValueError, match="the file has l1/W, which this layer does not"):
        MLP((10,), in_size=2).load_weights(tmp_path / "w.npz")


def test_save_weights_refuses_weights_not_created_yet_and_keeps_the_old_file(tmp_path) -> None:
    path = tmp_path / "w.npz"
    MLP((3,), in_size=2).save_weights(path)
    saved = path.read_bytes()
    with pytest.raises(ValueError, match=r"l0/W not created yet .*: call the model on an input once before saving"):
        MLP((3,)).save_weights(path)
    assert path.read_bytes() == saved


def test_an_interrupted_save_leaves_the_previous_file_whole(tmp_path, monkeypatch) -> None:
    path = tmp_path / "w.npz"
    model = MLP((3,), in_size=2)
    model.save_weights(path)
    saved = path.read_bytes()

    def half_a_save(file, **arrays) -> None:
        file.write(b"PK half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", half_a_save)
    with pytest.raises(KeyboardInterrupt):
        model.save_weights(path)
    assert path.read_bytes() == saved and [p.name for p in tmp_path.iterdir()] == ["w.npz"]


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
