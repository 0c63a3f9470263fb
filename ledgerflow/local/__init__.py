"""The local stack, for ``ledgerflow dev`` and the tests alike.

:mod:`ledgerflow.local.kafka` starts a real Kafka on loopback; :mod:`ledgerflow.local.processes`
runs engines, workers and gateways as child processes; :mod:`ledgerflow.local.ports` finds free
ports. Nothing here imports :mod:`ledgerflow.testing`.
"""
