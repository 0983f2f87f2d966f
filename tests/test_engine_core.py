"""Variable, Function and backward: the object model, the regressions the lectures warn about, errors."""
from __future__ import annotations

import gc
import subprocess
import sys
import time
import weakref

import numpy as np
import pytest
import torch

import autograd_lab
from autograd_lab import Config, Function, Variable, as_array, as_variable, no_grad, using_config
from autograd_lab import functions as F


# ----------------------------------------------------------------------
# Variable
# ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "data, expected",
    [
        (3, np.array(3.0)),
        (2.5, np.array(2.5)),
        (True, np.array(1.0)),
        (np.float32(1.5), np.array(1.5)),
        (np.int64(7), np.array(7.0)),
        (np.array([1, 2]), np.array([1.0, 2.0])),
        (np.array([1.5, 2.5], dtype=np.float32), np.array([1.5, 2.5])),
        (np.array([True, False]), np.array([1.0, 0.0])),
    ],
)
def test_variable_stores_float64_arrays(data, expected) -> None:
    v = Variable(data)
    assert isinstance(v.data, np.ndarray) and v.dtype == np.float64
    np.testing.assert_array_equal(v.data, expected)


def test_a_float64_array_is_not_copied() -> None:
    a = np.arange(3.0)
    assert Variable(a).data is a


def test_none_is_a_placeholder() -> None:
    v = Variable(None)
    assert v.data is None and repr(v) == "variable(None)"


@pytest.mark.parametrize(
    "data, message",
    [
        ("1.0", "Variable() takes a numpy array or a Python number, got str"),
        ([1.0, 2.0], "got list: wrap it with np.array(...) first"),
        ((1.0,), "got tuple: wrap it with np.array(...) first"),
        ({"a": 1}, "got dict"),
        (1 + 2j, "takes real numbers, got a complex value"),
        (np.array([1j]), "takes real numbers, got a complex value"),
        (np.array(["a"]), "convert it with .astype(float) first"),
        (torch.tensor(1.0), "got Tensor"),
    ],
)
def test_bad_data_is_refused_with_a_fix(data, message) -> None:
    with pytest.raises(TypeError) as info:
        Variable(data)
    assert message in str(info.value)


def test_attributes_and_properties() -> None:
    x = Variable(np.arange(6.0).reshape(2, 3), name="x")
    assert (x.shape, x.ndim, x.size, x.dtype, len(x)) == ((2, 3), 2, 6, np.float64, 2)
    assert (x.grad, x.creator, x.generation, x.name) == (None, None, 0, "x")
    assert x.T.shape == (3, 2)
    assert x.reshape(3, 2).shape == x.reshape((3, 2)).shape == (3, 2)
    assert x.transpose().shape == x.transpose(1, 0).shape == x.transpose((1, 0)).shape == (3, 2)
    assert x.sum().shape == () and x.sum(axis=0).shape == (3,) and x.sum(1, keepdims=True).shape == (2, 1)


def test_repr() -> None:
    assert repr(Variable(np.array([1.0, 2.0]))) == "variable([1. 2.])"
    assert repr(Variable(3.0, name="x")) == "variable(3.0, name='x')"
    assert repr(Variable(np.eye(2))) == "variable([[1. 0.]\n          [0. 1.]])"


def test_as_array_and_as_variable() -> None:
    assert isinstance(as_array(np.float64(2.0)), np.ndarray)
    a = np.ones(2)
    assert as_array(a) is a
    x = Variable(1.0)
    assert as_variable(x) is x
    assert isinstance(as_variable(2.0), Variable)


def test_operators_are_defined_on_the_class() -> None:
    """Written out as methods, not patched on at import time (DeZero's setup_variable)."""
    for name in ["__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
                 "__rtruediv__", "__pow__", "__rpow__", "__matmul__", "__rmatmul__", "__neg__", "__getitem__"]:
        assert name in vars(Variable), name


def test_operators_with_numbers_and_arrays_on_either_side() -> None:
    x = Variable(np.array([1.0, 2.0]))
    a = np.array([3.0, 4.0])
    for result, expected in [
        (x + 1, [2, 3]), (1 + x, [2, 3]), (a + x, [4, 6]), (x + a, [4, 6]),
        (x - 1, [0, 1]), (1 - x, [0, -1]), (a - x, [2, 2]),
        (x * 2, [2, 4]), (2 * x, [2, 4]), (a * x, [3, 8]),
        (x / 2, [0.5, 1]), (2 / x, [2, 1]), (a / x, [3, 2]),
        (x**2, [1, 4]), (2**x, [2, 4]), (-x, [-1, -2]), (x[1], 2),
        (a @ x, 11), (x @ a, 11),
    ]:
        assert isinstance(result, Variable)
        np.testing.assert_allclose(result.data, expected)


# ----------------------------------------------------------------------
# Function and the graph
# ----------------------------------------------------------------------
def test_function_links_outputs_to_their_creator() -> None:
    x = Variable(2.0)
    f = F.Square()
    y = f(x)
    assert y.creator is f and f.inputs == [x] and f.outputs[0]() is y
    assert (x.generation, f.generation, y.generation) == (0, 0, 1)
    z = F.add(y, x)
    assert z.generation == 2 and z.creator.generation == 1


def test_function_accepts_arrays_and_numbers() -> None:
    y = F.add(np.array([1, 2]), 3)
    np.testing.assert_array_equal(y.data, [4.0, 5.0])


class Split(Function):
    """Two outputs: (2x, 3x); d/dx of their sum is 5."""

    def forward(self, x):
        return 2 * x, 3 * x

    def backward(self, gy0, gy1):
        return 2 * gy0 + 3 * gy1


def test_functions_with_several_outputs_return_a_list() -> None:
    x = Variable(1.0)
    a, b = Split()(x)
    (a + b).backward()
    assert x.grad.data == 5.0


class SplitUsedOnce(Function):
    """Two outputs (2x, 3x) whose backward uses both gradients, like a user's own would."""

    def forward(self, x):
        return 2 * x, 3 * x

    def backward(self, gy0, gy1):
        return 2 * gy0 + 3 * gy1


@pytest.mark.parametrize("keep_unused", [True, False])
def test_an_unused_output_gets_a_zero_gradient(keep_unused: bool) -> None:
    """As PyTorch's materialize_grads: backward receives zeros, not None, for an output nothing used."""
    x = Variable(np.ones(3))
    a, b = SplitUsedOnce()(x)
    if not keep_unused:
        del b  # freed: its shape is still known to the function
    F.sum(a * 5.0).backward(create_graph=True)
    np.testing.assert_array_equal(x.grad.data, [10.0, 10.0, 10.0])


def test_no_grad_builds_no_graph() -> None:
    x = Variable(2.0)
    with no_grad():
        y = F.square(x) * 3
        assert Config.enable_backprop is False
    assert y.creator is None and y.generation == 0
    assert Config.enable_backprop is True
    assert F.square(x).creator is not None


def test_using_config_restores_after_an_exception() -> None:
    with pytest.raises(RuntimeError):
        with using_config("enable_backprop", False):
            raise RuntimeError("boom")
    assert Config.enable_backprop is True


def test_using_config_refuses_unknown_settings() -> None:
    message = "Config has no setting 'enable_backprob'; the settings are: enable_backprop"
    with pytest.raises(AttributeError, match=message):
        with using_config("enable_backprob", False):
            pass


# ----------------------------------------------------------------------
# backward: the regressions of DeZero steps 13-16
# ----------------------------------------------------------------------
def test_x_plus_x() -> None:
    x = Variable(3.0)
    (x + x).backward()
    assert x.grad.data == 2.0  # overwriting instead of accumulating gives 1
    x.cleargrad()
    (x + x + x).backward()
    assert x.grad.data == 3.0


def test_diamond() -> None:
    """x -> a -> (b, c) -> y: a's gradient is the sum over both paths."""
    x = Variable(0.7)
    a = F.sin(x)
    y = F.exp(a) + F.square(a)
    y.backward()
    tx = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    ta = torch.sin(tx)
    (torch.exp(ta) + ta**2).backward()
    assert x.grad.data == pytest.approx(tx.grad.item(), rel=1e-14)


def test_generations_give_64() -> None:
    x = Variable(2.0)
    a = F.square(x)
    y = F.add(F.square(a), F.square(a))
    y.backward()
    assert y.data == 32.0 and x.grad.data == 64.0


def naive_backward(y: Variable) -> None:
    """Backward without generations (DeZero step 14): run each function as soon as it is met."""
    y.grad = Variable(np.ones_like(y.data))
    funcs = [y.creator]
    while funcs:
        f = funcs.pop()
        gxs = f.backward(*[out().grad for out in f.outputs])
        gxs = gxs if isinstance(gxs, tuple) else (gxs,)
        for x, gx in zip(f.inputs, gxs):
            x.grad = gx if x.grad is None else x.grad + gx
            if x.creator is not None:
                funcs.append(x.creator)


def test_why_generations_matter_naive_order_gives_96() -> None:
    """Without generations, a = x² passes its gradient down before both squares of a have
    added theirs, and again after: x receives 2x·(2a) + 2x·(2a + 2a) = 96 instead of 64."""
    x = Variable(2.0)
    a = F.square(x)
    y = F.add(F.square(a), F.square(a))
    with no_grad():
        naive_backward(y)
    assert x.grad.data == 96.0


def test_a_100000_step_chain_needs_no_recursion() -> None:
    x = Variable(0.5)
    y = x
    for _ in range(100_000):
        y = y * 1.000001
    y.backward()
    assert x.grad.data == pytest.approx(1.000001**100_000, rel=1e-9)
    del y  # freeing a deep graph must not recurse either


def test_a_wide_graph_takes_linear_time() -> None:
    """20,000 branches waiting in backward's queue at once: DeZero's re-sort per insert takes
    about a minute here; a heap takes a fraction of a second."""
    x = Variable(1.0)
    ys = [x * float(i) for i in range(20_000)]
    while len(ys) > 1:
        ys = [ys[i] + ys[i + 1] for i in range(0, len(ys) - 1, 2)] + ys[len(ys) - len(ys) % 2 :]
    start = time.perf_counter()
    ys[0].backward()
    assert time.perf_counter() - start < 10.0
    assert x.grad.data == sum(range(20_000))


def test_an_unused_graph_is_freed() -> None:
    """Functions hold their outputs by weak reference: no cycles, so refcounting frees the graph."""
    gc.disable()
    try:
        x = Variable(np.ones(3))
        a = F.exp(x)
        y = F.square(a)
        intermediate, creator = weakref.ref(a), weakref.ref(y.creator.inputs[0])
        del a, y
        assert intermediate() is None and creator() is None
    finally:
        gc.enable()


def test_gradients_accumulate_until_cleargrad() -> None:
    x = Variable(3.0)
    y = F.square(x)
    y.backward()
    y.backward()
    assert x.grad.data == 12.0
    x.cleargrad()
    assert x.grad is None
    y.backward()
    assert x.grad.data == 6.0


def test_accumulation_across_two_losses_matches_the_course_example() -> None:
    """Notebook 02: Q1 = 3a³ - b², Q2 = -4a² - b⁴ at a=2, b=6."""
    a, b = Variable(2.0), Variable(6.0)
    (3 * a**3 - b**2).backward()
    assert (a.grad.data, b.grad.data) == (36.0, -12.0)
    (-4 * a**2 - b**4).backward()
    assert (a.grad.data, b.grad.data) == (20.0, -876.0)


def test_intermediate_gradients_are_freed_unless_retained() -> None:
    x = Variable(2.0)
    a = F.square(x)
    y = F.exp(a)
    y.backward()
    assert a.grad is None and y.grad is None and x.grad is not None
    x.cleargrad()
    y.backward(retain_grad=True)
    assert a.grad.data == pytest.approx(np.exp(4.0)) and y.grad.data == 1.0


def test_a_preset_output_gradient_is_the_upstream_gradient() -> None:
    x = Variable(np.array([1.0, 2.0]))
    y = x * x
    y.grad = Variable(np.array([10.0, 100.0]))
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [20.0, 400.0])


@pytest.mark.parametrize("shape", [(3,), (2, 1), (), (3, 2)])
def test_a_preset_output_gradient_of_the_wrong_shape_is_refused(shape) -> None:
    y = Variable(np.ones((2, 3))) * 2
    y.grad = Variable(np.ones(shape))
    with pytest.raises(ValueError) as info:
        y.backward()
    assert str(info.value) == (
        f"backward(): the gradient set on the output has shape {shape}, but the output has shape (2, 3): "
        "set y.grad to a Variable of shape (2, 3) (PyTorch: y.backward(gradient=...)), "
        "or to None to start from ones"
    )


def test_a_preset_output_gradient_must_be_a_variable() -> None:
    y = Variable(np.ones(2)) * 2
    y.grad = np.ones(2)
    with pytest.raises(TypeError, match=r"the output's .grad is a ndarray: set it to a Variable"):
        y.backward()


def test_backward_of_a_leaf_seeds_ones() -> None:
    x = Variable(np.ones((2, 2)))
    x.backward()
    np.testing.assert_array_equal(x.grad.data, np.ones((2, 2)))


def test_gradients_are_recorded_only_with_create_graph() -> None:
    x = Variable(2.0)
    F.sin(x).backward()
    assert x.grad.creator is None
    x.cleargrad()
    F.sin(x).backward(create_graph=True)
    assert x.grad.creator is not None


# ----------------------------------------------------------------------
# Gradients own their arrays: an in-place change to one never reaches another
# ----------------------------------------------------------------------
def kept_gradients(case: str) -> list[Variable]:
    """Variables whose gradients backward keeps, after a graph where rules pass gy on unchanged or as views."""
    a, b = Variable(np.ones((2, 3))), Variable(np.ones((2, 3)))
    if case == "a + b":
        (a + b).backward()
    elif case == "a + b, retain_grad":
        y = a + b
        y.backward(retain_grad=True)
        return [a, b, y]
    elif case == "reshape":  # Add passes gy to both, Reshape hands back views of it
        F.sum(F.reshape(a, (3, 2)) + F.reshape(b, (3, 2))).backward()
    elif case == "sum":
        F.sum(a + F.transpose(b).T).backward()
    elif case == "a preset seed":
        y = a + b
        seed = Variable(np.full((2, 3), 0.5))
        y.grad = seed
        y.backward()
        return [a, b, seed]
    elif case == "create_graph":
        (a + b).backward(create_graph=True)
    return [a, b]


@pytest.mark.parametrize("case", ["a + b", "a + b, retain_grad", "reshape", "sum", "a preset seed",
                                  "create_graph"])
def test_kept_gradients_share_no_memory_and_are_writable(case: str) -> None:
    variables = kept_gradients(case)
    arrays = [v.data if v.grad is None else v.grad.data for v in variables]
    for i, g in enumerate(arrays):
        assert g.flags.writeable, f"{case}: gradient {i} is read-only"
        for j in range(i):
            assert not np.shares_memory(g, arrays[j]), f"{case}: gradients {j} and {i} share memory"


def test_changing_one_gradient_in_place_leaves_the_other() -> None:
    a, b = Variable(np.ones(3)), Variable(np.ones(3))
    (a + b).backward()
    assert a.grad is not b.grad
    a.grad.data *= 10.0
    np.testing.assert_array_equal(b.grad.data, [1.0, 1.0, 1.0])
    x = Variable(np.ones((2, 2)))
    F.sum(x).backward()
    x.grad.data += 1.0  # a read-only broadcast view once: "assignment destination is read-only"
    np.testing.assert_array_equal(x.grad.data, np.full((2, 2), 2.0))


def test_owned_gradients_stay_differentiable_under_create_graph() -> None:
    """The copy that separates a.grad from b.grad is a Function: differentiating through it still works."""
    a, b = Variable(2.0), Variable(3.0)
    y = a * a + b * a
    y.backward(create_graph=True)  # dy/da = 2a + b, dy/db = a
    ga, gb = a.grad, b.grad
    a.cleargrad()
    b.cleargrad()
    (ga * gb).backward()  # d/da (2a + b) a = 4a + b, d/db = a
    assert (float(a.grad.data), float(b.grad.data)) == (11.0, 2.0)


# ----------------------------------------------------------------------
# unchain_backward: cutting the graph behind a variable (truncated BPTT)
# ----------------------------------------------------------------------
def test_unchain_backward_cuts_the_graph_behind_a_variable() -> None:
    x = Variable(2.0)
    a = F.square(x)
    e, s = F.exp(a), F.sin(a)  # a diamond behind h
    h = e + s
    h.unchain_backward()
    assert h.creator is not None  # h keeps its own creator, as in DeZero
    assert e.creator is None and s.creator is None and a.creator is None
    (h * 3.0).backward()
    assert (float(e.grad.data), float(s.grad.data)) == (3.0, 3.0)  # the inputs of h's creator are leaves now
    assert a.grad is None and x.grad is None


def test_unchain_backward_of_a_long_chain_needs_no_recursion() -> None:
    x = Variable(1.0)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.unchain_backward()
    y.unchain()
    assert y.creator is None


# ----------------------------------------------------------------------
# Higher derivatives (create_graph=True) against torch.autograd.grad
# ----------------------------------------------------------------------
def nth_derivatives(f, x0: float, n: int) -> list[float]:
    """f'(x0), f''(x0), ... up to the n-th, by repeated backward(create_graph=True)."""
    x = Variable(x0)
    y = f(x)
    values = []
    for _ in range(n):
        x.cleargrad()
        y.backward(create_graph=True)
        y = x.grad
        values.append(float(y.data))
    return values


def torch_nth_derivatives(f, x0: float, n: int) -> list[float]:
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    y = f(x)
    values = []
    for _ in range(n):
        # A derivative that no longer depends on x (a constant) has derivative 0.
        y = torch.autograd.grad(y, x, create_graph=True)[0] if y.requires_grad else torch.zeros(())
        values.append(y.item())
    return values


def test_third_derivative_of_tanh_at_1() -> None:
    """Notebook 02's JAX comparison: grad(grad(grad(tanh)))(1.0) = 0.62162673 (float32)."""
    ours = nth_derivatives(F.tanh, 1.0, 3)
    assert ours[2] == pytest.approx(0.62162673, abs=1e-7)
    np.testing.assert_allclose(ours, torch_nth_derivatives(torch.tanh, 1.0, 3), rtol=1e-13)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (F.sin, torch.sin),
        (F.sigmoid, torch.sigmoid),
        (lambda x: x**3 / (1 + x**2), lambda x: x**3 / (1 + x**2)),
        (lambda x: F.exp(x) * F.cos(x) - F.log(x), lambda x: torch.exp(x) * torch.cos(x) - torch.log(x)),
        (lambda x: 2**x * F.tanh(x), lambda x: 2**x * torch.tanh(x)),
    ],
)
def test_higher_derivatives_match_torch(ours, theirs) -> None:
    np.testing.assert_allclose(nth_derivatives(ours, 0.8, 4), torch_nth_derivatives(theirs, 0.8, 4), rtol=1e-11)


def test_hessian_vector_product_through_broadcasting_and_matmul() -> None:
    rng = np.random.default_rng(0)
    x0, W, b, v = (rng.standard_normal(shape) for shape in [(3, 4), (4, 2), (2,), (3, 4)])

    x = Variable(x0)
    F.sum(F.tanh(x @ W + b) ** 2).backward(create_graph=True)
    gx = x.grad
    x.cleargrad()
    F.sum(gx * v).backward()

    tx = torch.tensor(x0, requires_grad=True)
    (tgx,) = torch.autograd.grad((torch.tanh(tx @ torch.tensor(W) + torch.tensor(b)) ** 2).sum(), tx, create_graph=True)
    (thv,) = torch.autograd.grad((tgx * torch.tensor(v)).sum(), tx)
    np.testing.assert_allclose(x.grad.data, thv.numpy(), rtol=1e-11)


# ----------------------------------------------------------------------
# Errors that name the function and say what to do
# ----------------------------------------------------------------------
class TransposedGrad(Function):
    """y = x @ W, with the classic mistake: gx = (gy @ Wᵀ)ᵀ."""

    def forward(self, x, W):
        return x @ W

    def backward(self, gy):
        x, W = self.inputs
        return (gy @ W.T).T, x.T @ gy


def test_a_gradient_of_the_wrong_shape_names_the_function_and_both_shapes() -> None:
    x = Variable(np.ones((2, 3)))
    W = Variable(np.ones((3, 4)))
    y = TransposedGrad()(x, W)
    with pytest.raises(ValueError) as info:
        y.backward()
    assert str(info.value) == (
        "TransposedGrad.backward returned a gradient of shape (3, 2) for an input of shape (2, 3): "
        "a gradient must have the shape of its input"
    )


class ForgetsAnInput(Function):
    def forward(self, x0, x1):
        return x0 * x1

    def backward(self, gy):
        return gy * self.inputs[1]


def test_the_wrong_number_of_gradients_is_reported() -> None:
    y = ForgetsAnInput()(Variable(2.0), Variable(3.0))
    with pytest.raises(ValueError, match=r"ForgetsAnInput.backward returned 1 gradient\(s\) for 2 input\(s\)"):
        y.backward()


class ReturnsAnArray(Function):
    def forward(self, x):
        return 2 * x

    def backward(self, gy):
        return 2 * gy.data


def test_a_gradient_that_is_not_a_variable_is_reported() -> None:
    y = ReturnsAnArray()(Variable(np.ones(2)))
    message = "ReturnsAnArray.backward returned a gradient of type ndarray: return Variables"
    with pytest.raises(TypeError, match=message):
        y.backward()


def test_bad_arguments_to_losses_and_linear() -> None:
    x = Variable(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="one label per row"):
        F.softmax_cross_entropy(x, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"integer class labels in 0\.\.2"):
        F.softmax_cross_entropy(x, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"scores of shape \(N, classes\)"):
        F.softmax_cross_entropy(Variable(np.zeros(3)), np.array([0]))
    with pytest.raises(ValueError, match=r"x of shape \(\.\.\., in\) and W of shape \(in, out\); "
                                         r"got x \(4, 3\) and W \(4, 2\)"):
        F.linear(x, np.zeros((4, 2)))


def test_labels_that_went_through_a_variable_still_work() -> None:
    x = Variable(np.zeros((2, 3)))
    loss = F.softmax_cross_entropy(x, Variable(np.array([0, 2])))
    assert loss.data == pytest.approx(np.log(3))


def test_the_engine_never_imports_torch() -> None:
    code = (
        "import sys; import autograd_lab; "
        "from autograd_lab import core, functions, layers, optimizers, datasets, numerical, graph, forward_mode; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    root = autograd_lab.__file__.rsplit("/autograd_lab/", 1)[0]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
