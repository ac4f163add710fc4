"""Hyperparameters declared once: type, default, valid range and help text.

A model lists its hyperparameters as :class:`Param` objects (``params = declare(factors=FACTORS, ...)``);
everything else derives from that one declaration: the model's constructor and its
signature (so ``inspect.signature`` and scikit-learn's ``get_params``/``clone`` see real
keyword arguments), validation in the constructor, ``set_params`` and ``fit``, the
command-line flags and their ``--help`` (:mod:`fastmf.cli.options`), the parsing of
``tune --grid`` and ``--param`` values, and the parameters written into a saved model.

Values are stored as given (validation does not convert them), which is what
scikit-learn's ``clone`` checks.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
from dataclasses import dataclass

import numpy as np

from fastmf.common.errors import FastMFError

_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


@dataclass(frozen=True)
class Param:
    """One hyperparameter.

    ``default`` also fixes the type (``int``, ``float``, ``bool`` or ``str``) unless
    ``type`` is given; ``low``/``high`` bound numbers (inclusive unless ``low_open``),
    ``choices`` list the allowed strings, ``optional`` allows ``None`` (whose meaning the
    help states). ``name`` is filled in by :func:`declare`.
    """

    default: object
    help: str
    type: type | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple | None = None
    optional: bool = False
    name: str = ""

    @property
    def kind(self) -> type:
        return self.type or type(self.default)

    def but(self, **changes) -> Param:
        """The same hyperparameter with some fields changed (a model whose default or range differs)."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """The valid values in words (for error messages and help)."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        word = _TYPE_WORDS[self.kind]
        low, high = self._show(self.low), self._show(self.high)
        if self.low is not None and self.high is not None:
            bound = f"{word} in {'(' if self.low_open else '['}{low}, {high}]"
        elif self.low is not None:
            bound = f"{word} {'>' if self.low_open else '>='} {low}"
        elif self.high is not None:
            bound = f"{word} <= {high}"
        else:
            bound = word
        return bound + (" or none" if self.optional else "")

    def _show(self, bound) -> str:
        """A bound as written in messages: integers exactly (a seed's 9223372036854775807), numbers
        in short form (1e-08)."""
        if bound is None:
            return ""
        return str(int(bound)) if self.kind is int else f"{bound:g}"

    def check(self, value, owner: str = "") -> None:
        """Raise :class:`FastMFError` (one line naming the hyperparameter) unless ``value`` is valid."""
        if value is None and self.optional:
            return
        where = f"{owner} " if owner else ""
        bad = FastMFError(f"{where}{self.name} must be {self.describe()}, got {value!r}")
        kind = self.kind
        if kind is bool:
            if not isinstance(value, (bool, np.bool_)):
                raise bad
            return
        if kind is str:
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise bad
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise bad
        if kind is int and not isinstance(value, numbers.Integral):
            raise bad
        # integers are compared exactly (a float of 10**400 overflows; 2**63 rounds onto 2**63 - 1)
        x = int(value) if isinstance(value, numbers.Integral) else float(value)
        if isinstance(x, float) and not math.isfinite(x):
            raise bad
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            raise bad
        if self.high is not None and x > self.high:
            raise bad

    def parse(self, text: str, owner: str = ""):
        """The value written as ``text`` (a command-line or ``--grid`` value), checked."""
        text = text.strip()
        if self.optional and text.lower() in ("none", "null"):
            return None
        kind = self.kind
        try:
            if kind is bool:
                lowered = text.lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                value = lowered in ("true", "1", "yes")
            elif kind is int:
                value = int(text)
            elif kind is float:
                value = float(text)
            else:
                value = text.lower() if self.choices else text
        except ValueError:
            where = f"{owner} " if owner else ""
            raise FastMFError(f"{where}{self.name} must be {self.describe()}, got '{text}'") from None
        self.check(value, owner)
        return value


def declare(**params: Param) -> dict:
    """The ordered ``{name: Param}`` declaration of a model's hyperparameters."""
    return {name: dataclasses.replace(p, name=name) for name, p in params.items()}


def make_init(params: dict):
    """An ``__init__(self, *, name=default, ...)`` for the declaration ``params``.

    It validates every value and stores it unchanged as an attribute of the same
    name; its ``__signature__`` lists the hyperparameters as keyword arguments.
    """

    def __init__(self, **kwargs):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got an unexpected keyword argument '{unknown[0]}' "
                f"(its hyperparameters: {', '.join(params)})"
            )
        for name, p in params.items():
            value = kwargs.get(name, p.default)
            p.check(value, type(self).__name__)
            setattr(self, name, value)
        self._check_combination()

    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=p.default, annotation=p.kind)
            for name, p in params.items()
        ]
    )
    __init__.__doc__ = "Hyperparameters (keyword only):\n\n" + "\n".join(
        f"* ``{name}`` = {p.default!r}: {p.help}" for name, p in params.items()
    )
    return __init__
