"""Namespaces: tenants of one deployment, each with its own workflow ids and DAG definitions.

Inside the engine a namespaced id is one string, ``<namespace>/<id>``; an id of the default
namespace has no prefix, so every run started before namespaces existed, and every caller that
never names one, is in ``default``. A bare id cannot contain ``/`` (schemas.common.ID_RULE), so
the mapping is one to one. The gateway qualifies every id a caller sends with the request's
namespace and strips it from what it answers: a caller only ever sees bare ids, and never
reaches another namespace's runs or definitions. A child workflow is started in its parent's
namespace (ledgerflow/engine/processor.py).
"""

from __future__ import annotations

import re
from typing import Any

from ledgerflow.schemas.common import NAMESPACE_PATTERN

DEFAULT = "default"
PATTERN = NAMESPACE_PATTERN
RULE = "1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit"
ALL = "*"
"""In a credential's namespaces: every namespace (an operator's key)."""
_NAME = re.compile(f"^{PATTERN}$")
SEPARATOR = "/"


def is_valid(namespace: str) -> bool:
    return bool(_NAME.match(namespace))


def qualify(namespace: str, workflow_id: str) -> str:
    """The engine's id of ``workflow_id`` (bare) in ``namespace``."""
    return workflow_id if namespace == DEFAULT else f"{namespace}{SEPARATOR}{workflow_id}"


def split(qualified: str) -> tuple[str, str]:
    """(namespace, bare id) of an engine id."""
    namespace, sep, bare = qualified.partition(SEPARATOR)
    return (namespace, bare) if sep else (DEFAULT, qualified)


def namespace_of(qualified: str) -> str:
    return split(qualified)[0]


def within(namespace: str, qualified: str) -> str:
    """``qualified`` (an engine id) as a caller of ``namespace`` names it: bare when it is in
    that namespace, unchanged otherwise (an operator listing everything sees where each is)."""
    owner, bare = split(qualified)
    return bare if owner == namespace else qualified


def id_range(namespace: str) -> tuple[str, str] | None:
    """The engine ids of ``namespace`` as a half-open range in id order, or None for the default
    namespace (whose ids, without ``/``, sort among the others: filter with :func:`namespace_of`)."""
    if namespace == DEFAULT:
        return None
    # "0" is the character after "/": every "<ns>/..." sorts before "<ns>0"
    return f"{namespace}{SEPARATOR}", f"{namespace}0"


ID_KEYS = frozenset(
    {"workflow_id", "workflowId", "parent_workflow_id", "parentWorkflowId", "child_workflow_id"}
)
"""Keys whose values are workflow ids in what engines answer (run state, history, events)."""


def visible(namespace: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (an engine's run state, history event or listing row) with the workflow ids under
    ``ID_KEYS`` as a caller of ``namespace`` names them (:func:`within`). Only its own keys: the
    payloads inside are the user's data, whatever their keys are called."""
    return {
        key: within(namespace, value) if key in ID_KEYS and isinstance(value, str) else value
        for key, value in data.items()
    }
