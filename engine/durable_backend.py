"""The only module that talks to durable_rules.

Follows the measured behaviour in shared/durable-rules-notes.md:
- rulesets are built as data and a copy is handed over (it deletes the ``run`` keys);
- actions are one-parameter closures from a factory;
- only ``assert_fact``, one session per case, ``delete_state`` in ``finally``;
- an unmatched fact (``MessageNotHandledException``) means "no signals";
- every pattern ANDs the type discriminator ``{"t": "case"}`` (a lone ``$nex`` loops);
- "missing" and "not equal" are compiled explicitly; lists use ``$iany``/``$iall`` with an
  explicit guard because ``$iall`` on an empty list is false;
- one Host per process; ruleset names are unique per process (they cannot be unregistered);
- measured here: when the first fact a ruleset ever sees matches nothing, the following
  ``delete_state`` crashes the process (exit 139); every ruleset gets a no-op "prime" rule
  that is fired once right after registration, after which unmatched facts are safe;
- an exception inside an action is swallowed by durable_rules into the session state, so the
  state is checked after each case and a failure is raised loudly.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable, Mapping
from typing import Any

from engine.compiler import CompiledRuleSet
from engine.conditions import And, Const, Leaf, Node, Or

_host: Any = None
_host_lock = threading.Lock()
_names = itertools.count(1)
PRIME_RULE = "prime"
PRIME_SID = "__prime__"


class DurableError(RuntimeError):
    pass


def _get_host() -> Any:
    global _host
    with _host_lock:
        if _host is None:
            from durable.engine import Host

            _host = Host()
        return _host


def emit_leaf(leaf: Leaf) -> dict[str, Any]:
    f, op, v = leaf.field, leaf.op, leaf.value
    exists = {"$ex": {f: 1}}
    absent = {"$nex": {f: 1}}
    if op == "missing":
        return absent
    if op == "present":
        return exists
    if op == "contains":
        return {"$iany": {f: {"$i": v}}}
    if op == "not_contains":
        # empty lists are left out of facts, so "absent" is the empty list
        return {"$or": [absent, {"$iall": {f: {"$neq": {"$i": v}}}}]}
    core: dict[str, Any]
    if op == "eq":
        core = {f: v}
    elif op == "ne":
        core = {"$and": [exists, {"$neq": {f: v}}]}
    elif op in ("lt", "le", "gt", "ge"):
        core = {f"${'lte' if op == 'le' else 'gte' if op == 'ge' else op}": {f: v}}
    elif op == "in":
        core = {"$or": [{f: x} for x in v]} if len(v) > 1 else {f: v[0]}
    elif op == "not_in":
        core = {"$and": [exists, *({"$neq": {f: x}} for x in v)]}
    else:
        raise DurableError(f"unknown operator {op}")
    if leaf.missing_result:
        return {"$or": [absent, core]}
    return core


def emit(node: Node) -> dict[str, Any]:
    if isinstance(node, Leaf):
        return emit_leaf(node)
    if isinstance(node, And):
        return {"$and": [emit(c) for c in node.items]}
    if isinstance(node, Or):
        return {"$or": [emit(c) for c in node.items]}
    raise DurableError(f"cannot emit {type(node).__name__}: to_nnf first")


def ruleset_definition(
    compiled: CompiledRuleSet, action: Callable[[str], Callable[[Any], None]]
) -> dict[str, Any]:
    definition: dict[str, Any] = {}
    for i, cr in enumerate(compiled.rules):
        node = cr.nnf
        if isinstance(node, Const):
            if not node.value:
                continue  # can never fire
            pattern: dict[str, Any] = {"t": "case"}
        else:
            pattern = {"$and": [{"t": "case"}, emit(node)]}
        definition[f"r{i}"] = {"all": [{"m": pattern}], "run": action(cr.rule.id)}
    return definition


class DurableEvaluator:
    """Evaluates facts against one compiled rule set in durable_rules."""

    def __init__(self, compiled: CompiledRuleSet):
        self.compiled = compiled
        self._fired: list[str] = []
        self.name = f"regiesignaal_{compiled.version}_{compiled.as_of:%Y%m%d}_{next(_names)}"

        def action(rule_id: str) -> Callable[[Any], None]:
            def run(c: Any) -> None:
                self._fired.append(rule_id)

            return run

        definition = ruleset_definition(compiled, action)
        self.empty = not definition
        if not self.empty:
            definition[PRIME_RULE] = {"all": [{"m": {"t": "prime"}}], "run": lambda c: None}
            host = _get_host()
            host.set_rulesets({self.name: copy.deepcopy(definition)})
            host.assert_fact(self.name, {"t": "prime", "sid": PRIME_SID})
            host.delete_state(self.name, PRIME_SID)

    def fired(self, fact: Mapping[str, Any]) -> list[str]:
        """The ids of the rules that fire on ``fact`` (which must carry ``sid``)."""
        if self.empty:
            return []
        from durable.engine import MessageNotHandledException

        host = _get_host()
        sid = fact["sid"]
        self._fired = []
        try:
            try:
                host.assert_fact(self.name, dict(fact))
            except MessageNotHandledException:
                return []
            state = host.get_state(self.name, sid)
            if state and "exception" in state:
                raise DurableError(f"rule action failed for case {sid}: {state['exception']}")
            return sorted(set(self._fired))
        finally:
            host.delete_state(self.name, sid)
