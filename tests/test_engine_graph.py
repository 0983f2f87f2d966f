"""get_dot_graph (pure text), plot_dot_graph and draw_torch_graph (with and without Graphviz)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from autograd_lab import Variable, graph
from autograd_lab import functions as F

INSTALL_HINTS = ["sudo apt-get install graphviz", "brew install graphviz", "conda install -c conda-forge graphviz"]


def small_graph() -> Variable:
    x = Variable(np.ones((2, 3)), name="x")
    w = Variable(np.ones(3), name="w")
    y = F.sin(x * w)
    y.name = "y"
    return y


def test_get_dot_graph_text() -> None:
    assert graph.get_dot_graph(small_graph()) == (
        "digraph g {\n"
        '  v0 [label="y", color=orange, style=filled]\n'
        '  f0 [label="Sin", color=lightblue, style=filled, shape=box]\n'
        "  f0 -> v0\n"
        '  v1 [label="", color=orange, style=filled]\n'
        "  v1 -> f0\n"
        '  f1 [label="Mul", color=lightblue, style=filled, shape=box]\n'
        "  f1 -> v1\n"
        '  v2 [label="x", color=orange, style=filled]\n'
        "  v2 -> f1\n"
        '  v3 [label="w", color=orange, style=filled]\n'
        "  v3 -> f1\n"
        "}\n"
    )


def test_get_dot_graph_is_deterministic_and_verbose_adds_shapes() -> None:
    assert graph.get_dot_graph(small_graph()) == graph.get_dot_graph(small_graph())
    text = graph.get_dot_graph(small_graph(), verbose=True)
    assert '[label="x: (2, 3) float64"' in text and '[label="(2, 3) float64"' in text


def test_get_dot_graph_shows_a_reused_variable_twice_and_survives_long_chains() -> None:
    x = Variable(1.0, name="x")
    text = graph.get_dot_graph(x + x)
    assert text.count("v1 -> f0") == 2
    y = x
    for _ in range(20_000):
        y = F.sin(y)
    assert graph.get_dot_graph(y).count("[label=\"Sin\"") == 20_000


def test_names_are_quoted_safely() -> None:
    x = Variable(1.0, name='say "hi"')
    assert 'label="say \\"hi\\""' in graph.get_dot_graph(x)


@pytest.mark.skipif(not graph.dot_available(), reason="Graphviz's dot is not installed")
def test_plot_dot_graph_renders(tmp_path) -> None:
    from IPython.display import Image

    image = graph.plot_dot_graph(small_graph())
    assert isinstance(image, Image) and image.data[:8] == b"\x89PNG\r\n\x1a\n"
    svg = graph.plot_dot_graph(small_graph(), to_file=tmp_path / "g.svg")
    assert svg == str(tmp_path / "g.svg") and "<svg" in (tmp_path / "g.svg").read_text()


@pytest.mark.skipif(not graph.dot_available(), reason="Graphviz's dot is not installed")
def test_draw_torch_graph_renders(tmp_path) -> None:
    import torch
    from IPython.display import Image

    x = torch.ones(3, requires_grad=True)
    image = graph.draw_torch_graph(torch.sin(x.sum() + 2), params={"x": x}, to_file=tmp_path / "t.png")
    assert isinstance(image, Image) and (tmp_path / "t.png").exists()


def test_without_dot_plot_dot_graph_explains_and_returns_the_text(monkeypatch, capsys) -> None:
    monkeypatch.setattr(graph, "dot_available", lambda: False)
    y = small_graph()
    result = graph.plot_dot_graph(y)
    assert result == graph.get_dot_graph(y)
    out, err = capsys.readouterr()
    assert err == ""
    assert "Graphviz's `dot` program is not installed" in out
    for hint in INSTALL_HINTS:
        assert hint in out


def test_without_dot_draw_torch_graph_explains_and_returns_the_text(monkeypatch, capsys) -> None:
    import torch

    monkeypatch.setattr(graph, "dot_available", lambda: False)
    x = torch.ones(3, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would reach the student's stderr
        result = graph.draw_torch_graph(torch.sin(x.sum() + 2), params={"x": x})
    assert isinstance(result, str) and result.startswith("digraph") and "SinBackward0" in result
    out, err = capsys.readouterr()
    assert err == ""
    for hint in INSTALL_HINTS:
        assert hint in out


def test_a_torch_graph_is_described_without_torchviz():
    import torch

    from autograd_lab.graph import torch_dot

    x = torch.tensor([1.0, 2.0], requires_grad=True)
    dot = torch_dot(torch.sin(x.sum() + 2), {"x": x})
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    for label in ("SinBackward0", "AddBackward0", "SumBackward0", 'label="x (2,)"'):
        assert label in dot


def test_get_dot_graph_can_show_data_and_grad() -> None:
    x = Variable(2.0)
    a = F.square(x)
    y = F.square(a) + F.square(a)
    y.backward(retain_grad=True)
    text = graph.get_dot_graph(y, grad=True)
    assert 'label="4 | grad 16"' in text and 'label="2 | grad 64"' in text and 'label="32 | grad 1"' in text
    assert "grad" not in graph.get_dot_graph(y)
