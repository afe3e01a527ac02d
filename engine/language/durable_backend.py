"""The only module that talks to durable_rules.

Follows the measured behaviour in shared/durable-rules-notes.md:
- rulesets are built as data and a copy is handed over (it deletes the ``run`` keys);
- actions are one-parameter closures from a factory;
- only ``assert_fact``, one session per case, ``delete_state`` in ``finally``;
- an unmatched fact (``MessageNotHandledException``) means "no signals";
- every pattern ANDs the type discriminator ``{"t": "case"}`` (a lone ``$nex`` loops);
- "missing" and "not equal" are compiled explicitly; lists use ``$iany``/``$iall`` with an
  explicit guard because ``$iall`` on an empty list is false;
- one Host per process, without its dispatcher threads (see ``QuietHost``); ruleset
  names are unique per process (they cannot be unregistered);
- measured here: when the first fact a ruleset ever sees matches nothing, the following
  ``delete_state`` crashes the process (exit 139); every ruleset gets a no-op "prime" rule
  that is fired once right after registration, after which unmatched facts are safe;
- measured here: a pattern holding ``$or`` keeps its expressions in a sequence of at most
  31 entries (error 113 beyond); top-level alternatives become separate rules with the
  same action, groups are flattened, and ``rules check`` asks the engine per rule;
- an exception inside an action is swallowed by durable_rules into the session state; per
  case no Python action runs at all (``DurableEvaluator`` takes the matched rule names from
  the engine itself), so none can be lost that way, and the plain-Python cross-check of
  every case catches any result that goes missing;
- measured here: a session id holding ``"``, ``\\`` or a control character breaks
  ``delete_state`` (error 309) and every case after it; the session id is therefore never
  the case reference but a counter of our own (``s1``, ``s2`` ...), so no value from the
  source can reach it. Values inside a fact are JSON-encoded by durable-rules and safe.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from regiesignaal.engine.language.compiled import OVERDUE_MARK, CompiledRuleSet
from regiesignaal.engine.language.conditions import And, Const, Leaf, Node, Or

_RULE_NAME = re.compile(r'\{\s*"([A-Za-z0-9_]+)"\s*:')
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

            class QuietHost(Host):
                """A Host without its two dispatcher threads.

                durable-rules' Host polls every ruleset from timer threads and runs pending
                actions there, concurrently with ``assert_fact`` on the caller's thread.
                Measured here on 100,000 cases: now and then an action ran on the timer
                thread (error 307, node deleted) and its result was lost. We use no timers,
                so the threads are never started and every action runs inside assert_fact.
                """

                def _run(self) -> None:
                    pass

            _host = QuietHost()
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
        # with missing_result the $nex alternative below covers "absent" already
        core = {"$neq": {f: v}} if leaf.missing_result else {"$and": [exists, {"$neq": {f: v}}]}
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
    if isinstance(node, (And, Or)):
        key = "$and" if isinstance(node, And) else "$or"
        parts: list[dict[str, Any]] = []
        for child in node.items:
            out = emit(child)
            # a leaf may emit a group of the same kind ($or of "absent" and the test): splice
            for part in out[key] if list(out) == [key] else [out]:
                if part not in parts:
                    parts.append(part)
        return parts[0] if len(parts) == 1 else {key: parts}
    raise DurableError(f"cannot emit {type(node).__name__}: to_nnf first")


def rule_patterns(node: Node) -> list[dict[str, Any]]:
    """The durable-rules patterns of one rule: one per top-level alternative.

    durable-rules keeps the expressions of a pattern that holds ``$or`` in a sequence of at
    most 31 entries; splitting a top-level ``or`` into separate rules with the same action
    keeps each pattern small. An empty list means the rule can never fire.
    """
    if isinstance(node, Const):
        return [{"t": "case"}] if node.value else []
    alternatives = node.items if isinstance(node, Or) else (node,)
    patterns = []
    for alt in alternatives:
        body = emit(alt)
        parts = body["$and"] if list(body) == ["$and"] else [body]
        patterns.append({"$and": [{"t": "case"}, *parts]})
    return patterns


def ruleset_definition(
    compiled: CompiledRuleSet, action: Callable[[str], Callable[[Any], Any]]
) -> dict[str, Any]:
    """One durable-rules rule per top-level alternative of each rule's condition; a rule with
    an ``overdue`` block also gets rules for its overdue condition, whose action reports
    ``<rule id>#overdue`` (see ``engine.language.compiled.OVERDUE_MARK``)."""

    definition: dict[str, Any] = {}
    for i, cr in enumerate(compiled.rules):
        for j, pattern in enumerate(rule_patterns(cr.nnf)):
            definition[f"r{i}_{j}"] = {"all": [{"m": pattern}], "run": action(cr.rule.id)}
        if cr.overdue_nnf is not None:
            late_action = action(cr.rule.id + OVERDUE_MARK)
            for j, pattern in enumerate(rule_patterns(cr.overdue_nnf)):
                definition[f"o{i}_{j}"] = {"all": [{"m": pattern}], "run": late_action}
    return definition


def engine_problem(node: Node) -> str | None:
    """Why durable-rules refuses this (bound, NNF) rule condition, or None when it accepts it.

    Registers a throwaway ruleset in this process: durable-rules has limits (such as the
    31 entries of an expression sequence) that are cheapest to ask the engine itself.
    """
    patterns = rule_patterns(node)
    if not patterns:
        return None
    definition = {
        f"r{j}": {"all": [{"m": p}], "run": lambda c: None} for j, p in enumerate(patterns)
    }
    try:
        _get_host().set_rulesets({f"regiesignaal_check_{next(_names)}": definition})
    except Exception as exc:
        return str(exc)
    return None


def engine_rule_ids(compiled: CompiledRuleSet) -> dict[str, str]:
    """The id each durable-rules rule of ``ruleset_definition`` reports (``r0_1`` -> rule id,
    ``o0_0`` -> rule id + ``#overdue``)."""
    ids: dict[str, str] = {}
    for name, rule in ruleset_definition(compiled, lambda rule_id: lambda c: rule_id).items():
        ids[name] = rule["run"](None)
    return ids


class DurableEvaluator:
    """Evaluates facts against one compiled rule set in durable_rules.

    The ruleset is registered through durable-rules' ``Host``; each case is then evaluated
    with the engine calls the Host makes itself for a synchronous action (assert the fact,
    take the matched rules one by one, store the unchanged state, delete the session), but
    without building a Python closure, a JSON state and two timestamps per matched rule:
    our actions only record the rule's name, which the engine hands over with each match.
    Measured: about 45% less time per case than ``Host.assert_fact`` with the same results.
    """

    def __init__(self, compiled: CompiledRuleSet):
        self.compiled = compiled
        self._sids = itertools.count(1)
        self.name = f"regiesignaal_{compiled.version}_{compiled.as_of:%Y%m%d}_{next(_names)}"
        self.ids = engine_rule_ids(compiled)
        definition = ruleset_definition(compiled, lambda rule_id: lambda c: None)
        self.empty = not definition
        self._handle: Any = None
        if not self.empty:
            definition[PRIME_RULE] = {"all": [{"m": {"t": "prime"}}], "run": lambda c: None}
            host = _get_host()
            host.set_rulesets({self.name: copy.deepcopy(definition)})
            host.assert_fact(self.name, {"t": "prime", "sid": PRIME_SID})
            host.delete_state(self.name, PRIME_SID)
            self._handle = host.get_ruleset(self.name)._handle

    def fired(self, fact: Mapping[str, Any]) -> list[str]:
        """The ids of the rules that fire on ``fact`` (which must carry ``sid``)."""
        if self.empty:
            return []
        import durable_rules_engine as engine

        handle = self._handle
        sid = f"s{next(self._sids)}"  # never a source value: see the module docstring
        acting: int | None = None  # the state handle while an action is started
        try:
            code, value = engine.assert_fact(
                handle, json.dumps({**fact, "sid": sid}, ensure_ascii=False)
            )
            if code == 1:  # matched no rule (MessageNotHandledException in the Host)
                return []
            if code == 2:  # MessageObservedException: impossible with a fresh session id
                raise DurableError("durable-rules had seen this fact before")
            state_handle = 0 if code == 3 else value  # as Ruleset._handle_result does
            started = engine.start_action_for_state(handle, state_handle)
            if not started:
                return []
            acting = state_handle
            state, message = started[0], started[1]
            fired = set()
            while message:  # one matched rule at a time, as Ruleset._flush_actions takes them
                # {"<rule name>": {...the fact...}}: the name, without decoding the fact
                named = _RULE_NAME.match(message)
                name = named[1] if named else next(iter(json.loads(message)))
                fired.add(self.ids[name])
                engine.update_state(handle, state)
                message = engine.complete_and_start_action(handle, state_handle)
            acting = None
            return sorted(fired)
        except BaseException:
            if acting is not None:
                with contextlib.suppress(Exception):  # the first error is the one to report
                    engine.abandon_action(handle, acting)
            raise
        finally:
            engine.delete_state(handle, sid)
