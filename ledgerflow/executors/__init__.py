"""Stateless executors: workers that run activities from task queues."""
