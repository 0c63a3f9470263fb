"""Ledgerflow: durable execution on Apache Kafka.

The public surface is small on purpose::

    from ledgerflow import workflow, activity, Client, RetryPolicy
"""

from ledgerflow import activity, workflow
from ledgerflow.client import Client, WorkflowHandle
from ledgerflow.errors import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    InvalidIdError,
    LedgerflowError,
    NonDeterminismError,
    OwnerUnavailableError,
    PayloadTooLarge,
    WorkflowFailedError,
    WorkflowNotFoundError,
)
from ledgerflow.schemas.common import RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "ActivityError",
    "ApplicationError",
    "ChildWorkflowError",
    "Client",
    "InvalidIdError",
    "LedgerflowError",
    "NonDeterminismError",
    "OwnerUnavailableError",
    "PayloadTooLarge",
    "RetryPolicy",
    "WorkflowFailedError",
    "WorkflowHandle",
    "WorkflowNotFoundError",
    "__version__",
    "activity",
    "workflow",
]
