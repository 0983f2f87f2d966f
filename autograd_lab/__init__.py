"""autograd_lab: a small, readable automatic differentiation engine on numpy.

It follows the names of DeZero ("Deep Learning from Scratch 3"), which the
lectures teach; notebooks 05 and 06 build it and 08 uses it, next to PyTorch.

    from autograd_lab import Variable
    from autograd_lab import functions as F

    x = Variable(2.0)
    y = F.sin(x) * x
    y.backward()
    x.grad            # variable(0.077...) = sin(2) + 2 cos(2)

Modules, one concept each: `core` (Variable, Function, backward), `config`
(no_grad), `functions` (the operations), `numerical` (finite differences and
gradient checks), `graph` (drawing the computational graph), `forward_mode`
(dual numbers), `layers`, `optimizers`, `datasets`. The engine needs numpy
only; PyTorch is imported just by `graph.draw_torch_graph`.
"""
from autograd_lab.config import Config, no_grad, using_config
from autograd_lab.core import Function, Variable, as_array, as_variable
from autograd_lab import functions
from autograd_lab.layers import Parameter
from autograd_lab import datasets, forward_mode, graph, layers, numerical, optimizers

__all__ = [
    "Config",
    "Function",
    "Parameter",
    "Variable",
    "as_array",
    "as_variable",
    "datasets",
    "forward_mode",
    "functions",
    "graph",
    "layers",
    "no_grad",
    "numerical",
    "optimizers",
    "using_config",
]
