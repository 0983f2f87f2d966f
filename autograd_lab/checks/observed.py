"""What a check saw: a plain-data record of a value, and its JSON form.

A check never compares a student's object directly. It first *observes* it: a
tensor becomes its values as a float64/int/bool ndarray plus its dtype,
``requires_grad``, ``grad_fn`` and ``grad``; a tuple becomes a list of observed
items; an exception becomes its type and message. Expected values computed with
PyTorch are observed the same way, so one comparison serves every kind of answer.

Observing is what lets the grader decide verdicts outside the student's process:
the sandboxed kernel sends observations (JSON, never pickle, so a submission
cannot smuggle code into the grader), and the grader compares them with the
expected values it computed itself. Notebooks 01–07 all go through here.
"""
from __future__ import annotations

import base64
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

#: Arrays larger than this are not sent back from a sandbox; the check fails with a clear message.
MAX_ELEMENTS = 1_000_000
#: How deep nested tuples/lists/dicts are observed.
MAX_DEPTH = 6
#: How many items of a sequence or mapping are observed.
MAX_ITEMS = 1_000
#: Strings (messages, reprs) are cut to this length.
MAX_TEXT = 4_000


@dataclass
class Observed:
    """A value as a check saw it. ``kind`` says which other fields mean something.

    kinds: none, bool, number, str, array (numpy), tensor (torch), variable
    (anything with an ndarray ``.data``: autograd_lab's or the student's own
    Variable), sequence, mapping, exception, object (anything else, by repr),
    too_large.
    """

    kind: str
    type: str = ""
    data: np.ndarray | None = None
    dtype: str | None = None
    value: Any = None
    items: list["Observed"] | None = None
    keys: list[str] | None = None
    requires_grad: bool | None = None
    is_leaf: bool | None = None
    grad_fn: str | None = None
    grad: "Observed | None" = None
    message: str | None = None
    printed: str | None = None  # what the student's code printed while this value was made

    @property
    def shape(self) -> tuple[int, ...] | None:
        return None if self.data is None else tuple(self.data.shape)

    def brief(self, compact: bool = False, shapes: bool = False) -> str:
        """A short, readable rendering for messages; ``compact`` keeps it on one line, ``shapes`` shows
        every array by its shape (for a label that names long arguments)."""
        if self.kind == "none":
            return "None"
        if self.kind == "exception":
            return f"{self.type}: {self.message}" if self.message else str(self.type)
        if self.kind in ("bool", "str"):
            return repr(self.value)
        if self.kind == "number":
            return _format_number(self.data.item()) if self.data is not None else repr(self.value)
        if self.kind in ("array", "tensor", "variable"):
            return self._brief_array(compact, shapes)
        if self.kind == "sequence":
            inner = ", ".join(item.brief(compact, shapes) for item in self.items or [])
            if self.type == "tuple":
                return f"({inner},)" if len(self.items or []) == 1 else f"({inner})"
            return f"[{inner}]"
        if self.kind == "mapping":
            inner = ", ".join(f"{k!r}: {v.brief(compact, shapes)}" for k, v in zip(self.keys or [], self.items or []))
            return "{" + inner + "}"
        if self.kind == "too_large":
            return f"<{self.type} too large to check: {self.message}>"
        if compact and self.kind == "object" and (not self.message or len(self.message) > 40 or "\n" in self.message):
            return f"<{self.type}>"  # an object's long repr (<MLP object at 0x...>) says nothing in a label
        return self.message or f"<{self.type}>"

    def _brief_array(self, compact: bool, shapes: bool = False) -> str:
        name = {"array": "array", "tensor": "tensor"}.get(self.kind, self.type)
        if shapes and self.data.size > 1 or compact and self.data.size > 6:
            text = f"shape={self.data.shape}"
        else:
            text = np.array2string(self.data, precision=6, threshold=20, separator=", ")
            if compact:
                text = " ".join(text.split())
        extras = []
        if self.dtype and not any(t in self.dtype for t in ("float", "complex")):
            extras.append(f"dtype={self.dtype}")
        if self.requires_grad:
            extras.append("requires_grad=True")
        return f"{name}({', '.join([text, *extras])})"


def _format_number(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.10g}"
        return text if any(c in text for c in ".einn") else text + ".0"
    return repr(value)


def _type_name(obj: Any) -> str:
    cls = type(obj)
    module = cls.__module__
    if module in ("builtins", "__main__") or not module:
        return cls.__qualname__
    top = module.split(".")[0]
    return f"{top}.{cls.__qualname__}"


def _is_torch_tensor(obj: Any) -> bool:
    # Avoid importing torch just to ask: a tensor's class lives in the torch package.
    cls = type(obj)
    return cls.__module__.startswith("torch") and hasattr(obj, "detach") and hasattr(obj, "requires_grad")


def observe(obj: Any, depth: int = 0) -> Observed:
    """Turn any value into an :class:`Observed` record. Never raises for odd input."""
    try:
        return _observe(obj, depth)
    except Exception as error:  # a hostile or broken __repr__/__array__ must not break a check
        return Observed("object", type=_type_name(obj),
                        message=f"<could not inspect: {type(error).__name__}: {error}>"[:MAX_TEXT])


def _observe(obj: Any, depth: int) -> Observed:
    if obj is None:
        return Observed("none", type="NoneType")
    if isinstance(obj, BaseException):  # returned, not raised (raised ones are exception_record's)
        return Observed("object", type=type(obj).__name__, message=repr(obj)[:MAX_TEXT], value=str(obj)[:MAX_TEXT])
    if isinstance(obj, (bool, np.bool_)):
        return Observed("bool", type=_type_name(obj), value=bool(obj), data=np.asarray(bool(obj)), dtype="bool")
    if isinstance(obj, numbers.Number) and not hasattr(obj, "shape") or isinstance(obj, np.generic):
        array = np.asarray(obj)
        if array.shape != ():  # a number whose __array__ says otherwise: not a number after all
            return Observed("object", type=_type_name(obj), message=f"<{_type_name(obj)} that converts to an array "
                                                                      f"of shape {array.shape}>")
        if array.dtype.kind not in "iufc":
            array = _as_number(obj)  # sympy's numbers, Fraction, Decimal: numbers all the same
            if array is None:
                return Observed("object", type=_type_name(obj), message=repr(obj)[:MAX_TEXT])
        return Observed("number", type=_type_name(obj), data=array, dtype=str(array.dtype))
    if isinstance(obj, str):
        return Observed("str", type="str", value=obj[:MAX_TEXT])
    if _is_torch_tensor(obj):
        return _observe_tensor(obj, depth)
    if isinstance(obj, np.ndarray):
        return _observe_array(obj, "array", _type_name(obj), str(obj.dtype))
    data = getattr(obj, "data", None) if not isinstance(obj, (list, tuple, dict)) else None
    if isinstance(data, np.generic):  # early DeZero steps keep np.float64 in .data
        data = np.asarray(data)
    if isinstance(data, np.ndarray) or (data is not None and _is_torch_tensor(data)):
        return _observe_variable(obj, data, depth)
    if depth < MAX_DEPTH and isinstance(obj, (list, tuple)):
        items = [observe(item, depth + 1) for item in list(obj)[:MAX_ITEMS]]
        return Observed("sequence", type="tuple" if isinstance(obj, tuple) else "list", items=items)
    if depth < MAX_DEPTH and isinstance(obj, dict):
        keys = [str(k) for k in list(obj)[:MAX_ITEMS]]
        return Observed("mapping", type="dict", keys=keys,
                        items=[observe(v, depth + 1) for v in list(obj.values())[:MAX_ITEMS]])
    return Observed("object", type=_type_name(obj), message=repr(obj)[:MAX_TEXT])


def _as_number(obj: Any) -> np.ndarray | None:
    for convert in (int, float, complex):
        try:
            value = convert(obj)
        except (TypeError, ValueError, OverflowError):
            continue
        if value == obj:
            return np.asarray(value)
    return None


def _observe_array(array: np.ndarray, kind: str, type_name: str, dtype: str) -> Observed:
    if array.size > MAX_ELEMENTS:
        return Observed("too_large", type=type_name, message=f"{array.size} elements, the limit is {MAX_ELEMENTS}")
    if array.dtype.kind not in "biufc":
        return Observed("object", type=type_name, dtype=dtype, message=f"{type_name} of dtype {array.dtype}")
    return Observed(kind, type=type_name, data=np.array(array, copy=True), dtype=dtype)


def _observe_tensor(tensor: Any, depth: int) -> Observed:
    import torch  # already imported: this is a tensor

    detached = tensor.detach().cpu()
    if detached.layout != torch.strided:
        detached = detached.to_dense()
    dtype = str(tensor.dtype)
    if detached.is_floating_point():
        values = detached.to(torch.float64).numpy()
    elif detached.is_complex():
        values = detached.to(torch.complex128).numpy()
    else:
        values = detached.numpy()
    record = _observe_array(values, "tensor", "torch.Tensor", dtype)
    if record.kind != "tensor":
        return record
    record.requires_grad = bool(tensor.requires_grad)
    record.is_leaf = bool(tensor.is_leaf)
    record.grad_fn = None if tensor.grad_fn is None else type(tensor.grad_fn).__name__
    grad = tensor.grad if record.is_leaf else None
    if grad is not None and depth < MAX_DEPTH:
        record.grad = _observe_tensor(grad, depth + 1)
    return record


def _observe_variable(obj: Any, data: Any, depth: int) -> Observed:
    """A Variable of autograd_lab or of the student's own engine: its data and its grad."""
    inner = (_observe_tensor(data, depth + 1) if _is_torch_tensor(data)
             else _observe_array(data, "array", "numpy.ndarray", str(data.dtype)))
    if inner.kind not in ("array", "tensor"):
        return inner
    record = Observed("variable", type=type(obj).__name__, data=inner.data, dtype=inner.dtype)
    record.value = {"data_type": inner.type}
    grad = getattr(obj, "grad", None)
    if grad is not None and depth < MAX_DEPTH:
        record.grad = observe(grad, depth + 1)
    return record


# --- JSON form ----------------------------------------------------------------------------

def to_json(record: Observed) -> dict:
    """A JSON-safe dict; arrays travel as base64 of their bytes with dtype and shape."""
    out: dict[str, Any] = {}
    for f in fields(Observed):
        value = getattr(record, f.name)
        if value is None:
            continue
        if f.name == "data":
            out["data"] = encode_array(value)
        elif f.name == "items":
            out["items"] = [to_json(item) for item in value]
        elif f.name == "grad":
            out["grad"] = to_json(value)
        else:
            out[f.name] = value
    return out


_ALLOWED_DTYPES = {"b", "i", "u", "f", "c"}


def from_json(payload: Any, depth: int = 0) -> Observed:
    """Rebuild an :class:`Observed` from untrusted JSON, validating every field."""
    if not isinstance(payload, dict) or depth > MAX_DEPTH + 2:
        raise ValueError("malformed observation")
    kind = payload.get("kind")
    if not isinstance(kind, str):
        raise ValueError("malformed observation: no kind")
    record = Observed(kind)
    for name in ("type", "dtype", "grad_fn", "message", "printed"):
        value = payload.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise ValueError(f"malformed observation: {name}")
            setattr(record, name, value[:MAX_TEXT])
    for name in ("requires_grad", "is_leaf"):
        value = payload.get(name)
        if value is not None:
            if not isinstance(value, bool):
                raise ValueError(f"malformed observation: {name}")
            setattr(record, name, value)
    value = payload.get("value")
    if value is not None:
        if not isinstance(value, (str, bool, int, float, dict)):
            raise ValueError("malformed observation: value")
        if isinstance(value, dict) and not (len(value) <= 8 and all(
                isinstance(k, str) and isinstance(v, (str, bool, int, float)) for k, v in value.items())):
            raise ValueError("malformed observation: value is not a flat record")  # nested: a judge's RecursionError
        record.value = value
    if "data" in payload:
        record.data = decode_array(payload["data"])
    if "items" in payload:
        items = payload["items"]
        if not isinstance(items, list) or len(items) > MAX_ITEMS:
            raise ValueError("malformed observation: items")
        record.items = [from_json(item, depth + 1) for item in items]
    if "keys" in payload:
        keys = payload["keys"]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ValueError("malformed observation: keys")
        record.keys = keys
    if "grad" in payload:
        record.grad = from_json(payload["grad"], depth + 1)
    _check_kind(record)
    return record


#: What each kind of observation must hold, as :func:`observe` makes it (the judges rely on it).
_NUMERIC = ("data", "dtype")
_REQUIRED: dict[str, tuple[str, ...]] = {
    "none": (), "bool": ("value", "data"), "number": ("data",), "str": ("value",), "array": _NUMERIC,
    "tensor": (*_NUMERIC, "requires_grad", "is_leaf"), "variable": (*_NUMERIC, "value"), "sequence": ("items",),
    "mapping": ("keys", "items"), "exception": ("type",), "object": (), "too_large": (),
}


def _check_kind(record: Observed) -> None:
    """An observation of a known kind with every field that kind has (so no judge meets a half record)."""
    required = _REQUIRED.get(record.kind)
    if required is None:
        raise ValueError(f"malformed observation: unknown kind {record.kind[:40]!r}")
    missing = [name for name in required if getattr(record, name) is None]
    if missing:
        raise ValueError(f"malformed observation: a {record.kind} without {', '.join(missing)}")
    if record.kind in ("bool", "number") and record.data.shape != ():
        raise ValueError(f"malformed observation: a {record.kind} of shape {record.data.shape}")
    if (record.kind == "bool" and not isinstance(record.value, bool)
            or record.kind == "str" and not isinstance(record.value, str)):
        raise ValueError(f"malformed observation: a {record.kind} whose value is not one")
    if record.kind == "variable" and not isinstance(record.value, dict):
        raise ValueError("malformed observation: a variable without its data's type")
    if record.kind == "mapping" and len(record.keys) != len(record.items):
        raise ValueError("malformed observation: a mapping whose keys and values differ in number")


def encode_array(value: Any) -> dict:
    """An array as JSON: base64 of its bytes, with dtype and shape (the one array codec of the checks)."""
    array = np.asarray(value, order="C")  # (ascontiguousarray would turn a 0-d array into 1-d)
    return {"dtype": array.dtype.str, "shape": list(array.shape),
            "b64": base64.b64encode(array.tobytes()).decode("ascii")}


def decode_array(payload: Any) -> np.ndarray:
    """An array back from :func:`encode_array`'s JSON, which may be untrusted: every field is checked."""
    if not isinstance(payload, dict):
        raise ValueError("malformed array")
    dtype = np.dtype(str(payload.get("dtype")))
    if dtype.kind not in _ALLOWED_DTYPES or dtype.hasobject:
        raise ValueError(f"refusing array of dtype {dtype}")
    shape = payload.get("shape")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError("malformed array shape")
    size = math.prod(shape)
    if size > MAX_ELEMENTS:
        raise ValueError("array too large")
    raw = base64.b64decode(payload.get("b64", ""), validate=True)
    if len(raw) != size * dtype.itemsize:
        raise ValueError("array bytes do not match its shape")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def exception_record(error: BaseException, traceback_text: str = "") -> Observed:
    """What the student's code raised (an exception it returns is an ordinary value)."""
    record = Observed("exception", type=type(error).__name__, message=str(error)[:MAX_TEXT])
    if traceback_text:
        record.value = traceback_text[-MAX_TEXT:]
    return record


__all__ = ["Observed", "observe", "to_json", "from_json", "exception_record", "MAX_ELEMENTS"]
