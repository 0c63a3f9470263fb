"""Helpers for testing code that uses Ledgerflow (like ``temporalio.testing``).

``free_port()`` for servers a test starts; :mod:`ledgerflow.testing.kafka`
finds or starts a Kafka for a test session.
"""

from ledgerflow.testing.ports import free_port, free_ports, port_is_free

__all__ = ["free_port", "free_ports", "port_is_free"]
