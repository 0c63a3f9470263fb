"""Run one activity attempt: convert arguments, enforce the timeout, report the outcome."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ledgerflow import activity
from ledgerflow.codec.base import PayloadCodec
from ledgerflow.codec.envelope import decode, encode, encode_failure
from ledgerflow.converter import args_from_json, to_json
from ledgerflow.errors import ApplicationError, failure_from_exception
from ledgerflow.schemas.commands import TaskCompleted, TaskFailed
from ledgerflow.schemas.common import Failure
from ledgerflow.schemas.tasks import ActivityTask, TaskToken, task_token

log = logging.getLogger("ledgerflow.worker")

Report = Callable[[TaskCompleted | TaskFailed], None]


def attempt_info(task: ActivityTask, codec: PayloadCodec | None) -> activity.Info:
    """What ``activity.info()`` tells the attempt ``task`` runs (its heartbeat details decoded)."""
    token = TaskToken(**task.model_dump(include={"workflow_id", "run_id", "seq", "attempt", "partition"}))
    return activity.Info(
        task.workflow_id,
        task.run_id,
        task.activity_type,
        task.seq,
        task.attempt,
        task.heartbeat_timeout,
        decode(codec, task.heartbeat_details),
        task_token(token),
    )


def _failed(task: ActivityTask, failure: Failure) -> TaskFailed:
    return TaskFailed(
        workflow_id=task.workflow_id, run_id=task.run_id, seq=task.seq, attempt=task.attempt, failure=failure
    )


class AttemptRunner:
    """Runs attempts of the activities one worker knows.

    With a ``codec``, arguments are decoded before the activity sees them, and its result and
    its failure's details encoded before they are reported. An argument it cannot decode (no
    key, an unknown key) fails the attempt with the codec's error by name: retried, so a worker
    that holds the key may take it.
    """

    def __init__(
        self,
        activities: dict[str, activity.ActivityDefinition],
        threads: ThreadPoolExecutor,
        codec: PayloadCodec | None = None,
    ) -> None:
        self.activities = activities
        self.threads = threads
        self.codec = codec

    async def run(self, task: ActivityTask, ctx: activity.AttemptContext, report: Report) -> None:
        """Run the attempt and report its result; reports nothing when it was cancelled.

        What is reported may be too large to send: the worker makes it fit (ledgerflow/executors/outcomes.py).
        """
        try:
            result = await self._invoke(task, ctx)
        except asyncio.CancelledError:
            if ctx.cancelled.is_set():
                return
            raise
        except activity.ActivityCancelledError:
            return
        except activity.AsyncCompletion:
            log.info(
                "activity %s will be completed by its task token",
                task.activity_type,
                extra={"workflowId": task.workflow_id},
            )
            return
        except TimeoutError:
            failure = Failure(
                type="StartToCloseTimeout",
                message=f"attempt {task.attempt} exceeded {task.start_to_close_timeout} s",
            )
            report(_failed(task, failure))
            return
        except Exception as exc:
            if ctx.cancelled.is_set():
                return
            log.info(
                "activity %s failed: %.500s", task.activity_type, exc, extra={"workflowId": task.workflow_id}
            )
            report(_failed(task, encode_failure(self.codec, failure_from_exception(exc))))
            return
        try:
            completed = TaskCompleted(
                workflow_id=task.workflow_id,
                run_id=task.run_id,
                seq=task.seq,
                attempt=task.attempt,
                result=encode(self.codec, to_json(result)),
            )
        except Exception as exc:  # a result JSON cannot hold
            report(_failed(task, failure_from_exception(exc)))
            return
        try:
            report(completed)
        except Exception as exc:  # a result its record cannot hold (e.g. a lone surrogate)
            failure = Failure(
                type="UnsendableResult",
                message=f"the result of activity {task.activity_type!r} cannot be sent: {exc}",
                non_retryable=True,
            )
            report(_failed(task, failure))

    async def _invoke(self, task: ActivityTask, ctx: activity.AttemptContext) -> Any:
        definition = self.activities.get(task.activity_type)
        if definition is None:
            known = ", ".join(sorted(self.activities)) or "none"
            raise ApplicationError(
                f"activity {task.activity_type!r} is not registered on this worker (known: {known})",
                type="ActivityNotRegistered",
            )
        clear = [decode(self.codec, arg) for arg in task.args]
        args = args_from_json(clear, list(definition.param_types))
        token = activity.bind_context(ctx)
        try:
            if definition.is_async:
                call = definition.fn(*args)
            else:
                loop = asyncio.get_running_loop()
                context = contextvars.copy_context()
                call = loop.run_in_executor(
                    self.threads, functools.partial(context.run, definition.fn, *args)
                )
            timeout = task.start_to_close_timeout
            if timeout is not None:
                remaining = task.scheduled_at + timeout - time.time()
                return await asyncio.wait_for(call, max(remaining, 0.001))
            return await call
        finally:
            activity.bind_context_reset(token)
