"""Rendering with a budget (issue 17, item 12): an override template cannot render for ever,
build a huge text, or hold the run lock while it tries.

``BudgetedSandbox`` is Jinja's ``SandboxedEnvironment`` with three limits per render
(``render_budgeted``):

- **steps**: every loop iteration, call, attribute or item access and string join costs one
  step; a render may take ``MAX_STEPS``. Loops are counted by rewriting each ``{% for %}``
  to iterate through ``_budget_iter`` when the template is parsed, and each ``~`` join
  through ``_budget_concat``, so a loop without output or calls is still counted;
- **time**: ``MAX_SECONDS`` per render, checked with the steps;
- **size**: the output may be at most ``MAX_OUTPUT`` characters, and no single value built
  on the way (``*`` on text or lists, a filter with a huge width, a join) may be larger.

A template over budget raises ``TemplateBudgetError`` (a ``TemplateRuntimeError``) naming
the limit; the caller reports it with the template's file and line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateRuntimeError, nodes
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_STEPS = 2_000_000
MAX_SECONDS = 10.0
MAX_OUTPUT = 5_000_000
"""Characters of one rendered message (the product's largest digest is far below 1 MB)."""


class TemplateBudgetError(TemplateRuntimeError):
    """A render went over its budget (steps, time or size)."""

    filename: str | None = None


@dataclass
class _Budget:
    steps: int
    deadline: float


_current: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


def _tick(cost: int = 1) -> None:
    budget = _current.get()
    if budget is None:
        return
    budget.steps -= cost
    if budget.steps < 0:
        raise TemplateBudgetError(
            f"het sjabloon doet te veel werk (meer dan {MAX_STEPS} stappen); vereenvoudig de lussen"
        )
    if budget.steps % 1024 == 0 and time.monotonic() > budget.deadline:
        raise TemplateBudgetError(
            f"het sjabloon rendert langer dan {MAX_SECONDS:g} seconden; vereenvoudig de lussen"
        )


def _too_large(what: str) -> TemplateBudgetError:
    return TemplateBudgetError(
        f"het sjabloon maakt {what} groter dan {MAX_OUTPUT} tekens; een bericht blijft klein"
    )


def _check_size(value: Any) -> Any:
    if isinstance(value, str | list | tuple | bytes) and len(value) > MAX_OUTPUT:
        raise _too_large("een waarde")
    return value


def _budget_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _tick()
        yield item


def _budget_concat(*parts: Any) -> str:
    _tick()
    text = "".join(str(p) for p in parts)
    return str(_check_size(text))


class _CountLoopsAndJoins(NodeTransformer):
    """Rewrites ``{% for x in y %}`` to ``{% for x in _budget_iter(y) %}`` and ``a ~ b`` to
    ``_budget_concat(a, b)``."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(
            nodes.Name("_budget_iter", "load"), [node.iter], [], None, None, lineno=node.lineno
        )
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(
            nodes.Name("_budget_concat", "load"), list(node.nodes), [], None, None,
            lineno=node.lineno,
        )  # fmt: skip


def _guard_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        for value in (*args, *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and value > MAX_OUTPUT:
                raise _too_large("een waarde")
        return _check_size(function(*args, **kwargs))

    for attribute in ("jinja_pass_arg",):  # keep pass_context/pass_environment markers
        if hasattr(function, attribute):
            setattr(guarded, attribute, getattr(function, attribute))
    return guarded


class BudgetedSandbox(SandboxedEnvironment):
    """The sandbox with a step, time and size budget per render (see module)."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.globals["_budget_iter"] = _budget_iter
        self.globals["_budget_concat"] = _budget_concat
        self.filters = {name: _guard_filter(f) for name, f in self.filters.items()}

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        result = _CountLoopsAndJoins().visit(tree)
        assert isinstance(result, nodes.Template)
        return result

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(n, int)
                if sized and len(seq) * n > MAX_OUTPUT:
                    raise _too_large("een tekst of lijst")
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise TemplateBudgetError("een macht in een sjabloon is hooguit 64")
        return _check_size(super().call_binop(context, operator, left, right))

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        return _check_size(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)


def _pass_iter(iterable: Iterable[Any]) -> Iterable[Any]:
    return iterable


def _plain_concat(*parts: Any) -> str:
    return "".join(str(p) for p in parts)


class ProductSandbox(SandboxedEnvironment):
    """The sandbox for the product's own templates (no override directory): the same
    parsing as :class:`BudgetedSandbox` (``~`` joins as it does), without counting steps,
    time or size per render. The product's templates are not hostile and their loops are
    bounded by the views; counting every attribute access cost about a fifth of composing
    the night (issue 19). They are rendered with :func:`render_unbudgeted`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.globals["_budget_iter"] = _pass_iter
        self.globals["_budget_concat"] = _plain_concat

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        result = _CountLoopsAndJoins().visit(tree)
        assert isinstance(result, nodes.Template)
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``view.key`` on a view dictionary is its key, looked up first: Jinja asks for
        the attribute first and falls back to the key on the ``AttributeError``, which cost
        about a sixth of rendering the night's lists (issue 19). The same value as
        Jinja's order as long as no template reads a dictionary method by attribute, which
        the product's templates never do (``tests/test_template_budget.py``)."""
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


def render_unbudgeted(template: Any, context: dict[str, Any]) -> str:
    """Render a template of :class:`ProductSandbox` (the product's own)."""
    return "".join(template.generate(context))


def render_budgeted(template: Any, context: dict[str, Any]) -> str:
    """Render ``template`` within the budget (see module); raises ``TemplateBudgetError``."""
    token = _current.set(_Budget(MAX_STEPS, time.monotonic() + MAX_SECONDS))
    try:
        size = 0
        chunks: list[str] = []
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                error = _too_large("het bericht")
                error.filename = template.filename  # no template frame: name the file
                raise error
            _tick()
            chunks.append(chunk)
        return "".join(chunks)
    finally:
        _current.reset(token)
