"""Global switches of the engine: whether operations record a graph for backprop.

Serves notebook 06 (a complete engine), where `no_grad()` is introduced as
the DeZero twin of PyTorch's `torch.no_grad()`, and notebook 08, where inference
and optimizer updates run without building a graph.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class Config:
    """Settings read by every `Function` call.

    `enable_backprop`: when True (the default) each operation remembers its
    inputs and becomes its outputs' `creator`, so `backward()` can walk back
    through it. When False nothing is remembered: faster, and memory is freed
    as soon as values are no longer used (PyTorch: `torch.is_grad_enabled()`).
    """

    enable_backprop = True


@contextlib.contextmanager
def using_config(name: str, value: Any) -> Iterator[None]:
    """Set `Config.<name>` to `value` inside a `with` block, then restore it.

    Restoring happens even when the block raises, so an exception can never
    leave the engine stuck with backprop switched off.
    """
    if not hasattr(Config, name) or name.startswith("_"):
        settings = ", ".join(k for k in vars(Config) if not k.startswith("_"))
        raise AttributeError(f"Config has no setting {name!r}; the settings are: {settings}")
    old_value = getattr(Config, name)
    setattr(Config, name, value)
    try:
        yield
    finally:
        setattr(Config, name, old_value)


def no_grad() -> contextlib.AbstractContextManager[None]:
    """`with no_grad():` runs operations without recording a graph (PyTorch: `torch.no_grad()`)."""
    return using_config("enable_backprop", False)
