"""Built-ins as a worker builds them, for the sandbox tests."""

from __future__ import annotations

import inspect
from typing import Any

from ledgerflow.config import Settings
from ledgerflow.dag.node_types import ALL_BUILTINS
from ledgerflow.executors.builtins import worker_builtins
from ledgerflow.executors.sandbox.settings import BuiltinSettings


async def call(name: str, input: dict[str, Any], *, settings: Settings | None = None, **sandbox: Any) -> Any:
    """Run built-in ``name`` on ``input`` as a worker with every built-in enabled and ``sandbox``
    settings would (the environment plays no part)."""
    builtin_settings = BuiltinSettings.model_validate({"builtins": ALL_BUILTINS, **sandbox})
    definition = worker_builtins(builtin_settings, settings or Settings())[name]
    result = definition.fn(input)
    return await result if inspect.isawaitable(result) else result
