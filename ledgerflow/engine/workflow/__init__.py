"""The workflow runtime: definitions, a deterministic event loop, instances and replay."""
