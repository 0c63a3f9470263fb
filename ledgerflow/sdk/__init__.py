"""What the SDK's workflow surface (``ledgerflow.workflow``) stands on: workflow definitions and
the runtime protocol the engine implements. Nothing here loads the engine or a Kafka client."""
