"""Wire formats: every inbox command, history event, task message and public event.

All are pydantic v2 models; JSON Schema for producers in other languages is
exported to ``ledgerflow/schemas/json/`` by ``python -m ledgerflow.schemas.export``.
"""
