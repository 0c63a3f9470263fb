"""Activities: plain functions (sync or async) that do the real work, at least once.

    from ledgerflow import activity

    @activity.defn
    async def charge(order: Order) -> Receipt: ...

Inside a running activity, :func:`info`, :func:`heartbeat` and
:func:`is_cancelled` tell about and report on the current attempt.
"""

from __future__ import annotations

import contextvars
import importlib
import inspect
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn, TypeVar, overload

from ledgerflow.converter import parameter_types, return_type
from ledgerflow.errors import LedgerflowError

F = TypeVar("F", bound=Callable[..., Any])
DEFINITION_ATTR = "__ledgerflow_activity__"


@dataclass(frozen=True)
class ActivityDefinition:
    """What ``@activity.defn`` records about a function."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    param_types: tuple[Any, ...]
    result_type: Any


@overload
def defn(fn: F) -> F: ...
@overload
def defn(*, name: str | None = None) -> Callable[[F], F]: ...
def defn(fn: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Make a function an activity; its name defaults to the function's."""

    def decorate(f: F) -> F:
        if not callable(f) or inspect.isclass(f):
            raise TypeError(f"@activity.defn needs a function, got {f!r}")
        params = inspect.signature(f).parameters.values()
        keyword_only = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
        if keyword_only:
            raise TypeError(
                f"activity {f.__name__!r} has keyword-only parameters {keyword_only}: "
                "activities take positional arguments"
            )
        definition = ActivityDefinition(
            name=name or f.__name__,
            fn=f,
            is_async=inspect.iscoroutinefunction(f),
            param_types=tuple(parameter_types(f)),
            result_type=return_type(f),
        )
        setattr(f, DEFINITION_ATTR, definition)
        return f

    return decorate(fn) if fn is not None else decorate


def definition_of(fn: Any) -> ActivityDefinition:
    """The definition attached by ``@activity.defn``, or a clear error."""
    found = getattr(fn, DEFINITION_ATTR, None)
    if not isinstance(found, ActivityDefinition):
        raise TypeError(f"{fn!r} is not an activity: was it decorated with @activity.defn?")
    return found


def collect(modules: Iterable[str]) -> dict[str, ActivityDefinition]:
    """Every activity at the top level of the named modules, by name: ``@activity.defn``
    functions, and the ``@activity.defn`` methods of objects there (``acts = MyActivities(db)``:
    its methods run bound to ``acts``, as temporalio's ``activities=[acts.method]``)."""
    found: dict[str, ActivityDefinition] = {}
    for module_name in modules:
        found.update(definitions(vars(importlib.import_module(module_name)).values()))
    return found


def definitions(values: Iterable[Any]) -> dict[str, ActivityDefinition]:
    """The activities among ``values`` (``@activity.defn`` functions, their bound methods, or
    objects whose methods are activities), by name; a later one replaces an earlier of its name."""
    return {definition.name: definition for value in values for definition in _definitions_in(value)}


def _definitions_in(value: Any) -> list[ActivityDefinition]:
    """The activity ``value`` is (a function), or those its methods are (an object)."""
    definition = getattr(value, DEFINITION_ATTR, None)
    if isinstance(definition, ActivityDefinition):
        if inspect.ismethod(value):  # ``compose = acts.compose`` at the top of a module
            return [replace(definition, fn=value, param_types=definition.param_types[1:])]
        return [] if inspect.isclass(value) else [definition]
    if inspect.isclass(value) or inspect.ismodule(value) or inspect.isroutine(value):
        return []
    bound = []
    for name, member in inspect.getmembers(type(value)):
        method = getattr(member, DEFINITION_ATTR, None)
        if isinstance(method, ActivityDefinition) and inspect.isfunction(member):
            # The class holds the plain function (``self`` its first parameter): bind it.
            bound.append(replace(method, fn=getattr(value, name), param_types=method.param_types[1:]))
    return bound


# ------------------------------------------------------------- attempt context
@dataclass(frozen=True)
class Info:
    """The attempt being run."""

    workflow_id: str
    run_id: str
    activity_type: str
    seq: int
    attempt: int
    heartbeat_timeout: float | None
    heartbeat_details: Any = None
    """What an earlier attempt of this activity last heartbeated (None on the first attempt or
    when none did): where a retry may resume."""
    task_token: str = ""
    """Names this attempt to whoever completes it later (``raise_complete_async``)."""


@dataclass
class AttemptContext:
    """Per-attempt state an executor shares with the activity code."""

    info: Info
    heartbeat: Callable[[Any], None]
    cancelled: threading.Event = field(default_factory=threading.Event)


_context: contextvars.ContextVar[AttemptContext | None] = contextvars.ContextVar(
    "ledgerflow_activity_context", default=None
)


class NotInActivityError(LedgerflowError):
    """An ``activity`` function was called outside a running activity."""


class ActivityCancelledError(LedgerflowError):
    """The workflow no longer wants this attempt's result; raised by :func:`heartbeat`."""


def _current() -> AttemptContext:
    ctx = _context.get()
    if ctx is None:
        raise NotInActivityError("not in an activity: call this from activity code")
    return ctx


def info() -> Info:
    """Facts about the running attempt."""
    return _current().info


def heartbeat(details: Any = None) -> None:
    """Tell the engine this attempt is alive; raises ActivityCancelledError once it was cancelled."""
    ctx = _current()
    if ctx.cancelled.is_set():
        raise ActivityCancelledError(f"activity {ctx.info.activity_type!r} was cancelled")
    ctx.heartbeat(details)


class AsyncCompletion(BaseException):
    """Raised by ``raise_complete_async`` for the executor (which reports nothing for the attempt);
    a BaseException, so the activity's own ``except Exception`` lets it by."""


def raise_complete_async() -> NoReturn:
    """End this attempt's function without a result: whoever holds ``info().task_token``
    completes it later (``Client.get_async_activity_handle(token).complete(result)``, or the
    gateway's ``/api/v1/activities/complete``). Its start-to-close timeout still runs."""
    raise AsyncCompletion()


def is_cancelled() -> bool:
    """True once the workflow cancelled this attempt (for sync activities that poll)."""
    return _current().cancelled.is_set()


def bind_context(ctx: AttemptContext) -> contextvars.Token[AttemptContext | None]:
    """Used by executors: make ``ctx`` the current attempt."""
    return _context.set(ctx)


def bind_context_reset(token: contextvars.Token[AttemptContext | None]) -> None:
    """Used by executors: undo :func:`bind_context`."""
    _context.reset(token)


__all__ = [
    "ActivityCancelledError",
    "ActivityDefinition",
    "Info",
    "collect",
    "definition_of",
    "defn",
    "heartbeat",
    "info",
    "is_cancelled",
    "raise_complete_async",
]
