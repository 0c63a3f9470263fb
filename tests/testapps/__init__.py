"""Workflows and activities the integration tests run inside real engine and worker processes."""
