"""Thin, typed wrappers over confluent-kafka shared by the engine, the gateway and executors."""
