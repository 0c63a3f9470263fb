"""The DAG language: node types, expressions, and the checks a definition passes before it is
registered. Shared by the gateway, the Client, the engine and the workers."""
