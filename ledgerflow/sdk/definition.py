"""Workflow definitions, made by ``@workflow.defn`` and looked up by name."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from ledgerflow.converter import parameter_types, return_type

DEFINITION_ATTR = "__ledgerflow_workflow__"
RUN_ATTR = "__ledgerflow_workflow_run__"
QUERY_ATTR = "__ledgerflow_workflow_query__"
SIGNAL_ATTR = "__ledgerflow_workflow_signal__"
UPDATE_ATTR = "__ledgerflow_workflow_update__"
VALIDATOR_ATTR = "__ledgerflow_workflow_update_validator__"
"""Set on an update method: the name of its validator method."""


@dataclass(frozen=True)
class SignalHandler:
    """A ``@workflow.signal`` method of a workflow class."""

    method: str
    input_types: tuple[Any, ...]
    """Annotated types of its positional parameters, ``self`` left out."""
    is_async: bool


@dataclass(frozen=True)
class UpdateHandler:
    """A ``@workflow.update`` method of a workflow class, and its validator."""

    method: str
    input_types: tuple[Any, ...]
    is_async: bool
    validator: str | None = None
    """Name of the ``@<update>.validator`` method, run before the update is accepted."""


@dataclass(frozen=True)
class WorkflowDefinition:
    """A code workflow: a class with one ``@workflow.run`` method, or an async function."""

    name: str
    target: type | Callable[..., Coroutine[Any, Any, Any]]
    run_method: str | None
    """Name of the run method for a class; None for a function workflow."""
    queries: dict[str, str] = field(default_factory=dict)
    """Query name -> method name."""
    signals: dict[str, SignalHandler] = field(default_factory=dict)
    """Signal name -> its ``@workflow.signal`` handler."""
    updates: dict[str, UpdateHandler] = field(default_factory=dict)
    """Update name -> its ``@workflow.update`` handler."""
    input_types: tuple[Any, ...] = ()
    """Annotated types of the run function's positional parameters (one per parameter)."""
    result_type: Any = Any

    def create(self) -> tuple[object | None, Callable[..., Coroutine[Any, Any, Any]]]:
        """A fresh workflow object (None for a function) and the coroutine function to run."""
        if self.run_method is None:
            return None, self.target
        obj = self.target()
        return obj, getattr(obj, self.run_method)


def build_definition(target: Any, name: str | None) -> WorkflowDefinition:
    """Validate ``target`` and describe it; every problem is reported in one ValueError."""
    problems: list[str] = []
    if inspect.isclass(target):
        runs = [n for n, m in inspect.getmembers(target) if getattr(m, RUN_ATTR, False)]
        queries = {
            getattr(m, QUERY_ATTR): n for n, m in inspect.getmembers(target) if getattr(m, QUERY_ATTR, None)
        }
        signals: dict[str, SignalHandler] = {}
        for n, m in inspect.getmembers(target):
            signal = getattr(m, SIGNAL_ATTR, None)
            if signal is None:
                continue
            if signal in signals:
                first = signals[signal].method
                problems.append(f"two @workflow.signal handlers of signal {signal!r}: {first}, {n}")
            types = tuple(parameter_types(m, skip_self=True))
            signals[signal] = SignalHandler(n, types, inspect.iscoroutinefunction(m))
        updates: dict[str, UpdateHandler] = {}
        for n, m in inspect.getmembers(target):
            update = getattr(m, UPDATE_ATTR, None)
            if update is None:
                continue
            if update in updates or update in signals:
                problems.append(f"two handlers of message {update!r}: {n} and another")
            types = tuple(parameter_types(m, skip_self=True))
            validator = getattr(m, VALIDATOR_ATTR, None)
            if validator is not None and inspect.iscoroutinefunction(getattr(target, validator)):
                problems.append(f"validator {validator!r} of update {update!r} must be a plain 'def'")
            updates[update] = UpdateHandler(n, types, inspect.iscoroutinefunction(m), validator)
        if len(runs) != 1:
            problems.append(f"needs exactly one @workflow.run method, found {len(runs)}")
        else:
            method = getattr(target, runs[0])
            if not inspect.iscoroutinefunction(method):
                problems.append(f"@workflow.run method '{runs[0]}' must be 'async def'")
        try:
            target()
        except TypeError as exc:
            problems.append(f"must be constructible without arguments ({exc})")
        if problems:
            raise ValueError(f"Invalid workflow class {target.__qualname__}: " + "; ".join(problems))
        method = getattr(target, runs[0])
        return WorkflowDefinition(
            name=name or target.__name__,
            target=target,
            run_method=runs[0],
            queries=queries,
            signals=signals,
            updates=updates,
            input_types=tuple(parameter_types(method, skip_self=True)),
            result_type=return_type(method),
        )
    if inspect.iscoroutinefunction(target):
        return WorkflowDefinition(
            name=name or target.__name__,
            target=target,
            run_method=None,
            input_types=tuple(parameter_types(target)),
            result_type=return_type(target),
        )
    raise ValueError(f"@workflow.defn needs a class or an 'async def' function, got {target!r}")


def definition_of(obj: Any) -> WorkflowDefinition:
    """The definition attached by ``@workflow.defn``, or a clear error."""
    found = getattr(obj, DEFINITION_ATTR, None)
    if not isinstance(found, WorkflowDefinition):
        raise TypeError(f"{obj!r} is not a workflow: was it decorated with @workflow.defn?")
    return found


class WorkflowRegistry:
    """Code workflows known to this process, by name."""

    def __init__(self, definitions: Iterable[WorkflowDefinition] = ()) -> None:
        self._by_name: dict[str, WorkflowDefinition] = {}
        for definition in definitions:
            self.add(definition)

    def add(self, definition: WorkflowDefinition) -> None:
        existing = self._by_name.get(definition.name)
        if existing is not None and existing.target is not definition.target:
            raise ValueError(f"two workflows are named {definition.name!r}")
        self._by_name[definition.name] = definition

    def get(self, name: str) -> WorkflowDefinition | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    @classmethod
    def from_modules(cls, modules: Iterable[str]) -> WorkflowRegistry:
        """Every ``@workflow.defn`` found at the top level of the named modules."""
        registry = cls()
        for module_name in modules:
            module = importlib.import_module(module_name)
            for value in vars(module).values():
                definition = getattr(value, DEFINITION_ATTR, None)
                if isinstance(definition, WorkflowDefinition):
                    registry.add(definition)
        return registry
