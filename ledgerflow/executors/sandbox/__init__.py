"""The sandbox of the built-in activities that do I/O: files, HTTP and Kafka.

Built-ins run what a workflow's input asks, and that input comes from whoever may start a run
or register a DAG: without limits a built-in is a confused deputy, doing with the worker's
rights what its caller could not. Each module here confines one kind of I/O to what the
worker's :class:`~ledgerflow.executors.sandbox.settings.BuiltinSettings` allow, and refuses
the rest with a :class:`~ledgerflow.executors.sandbox.refusal.Refused` naming the setting.
"""
