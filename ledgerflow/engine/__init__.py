"""The partition-owner runtime: state, timers, the workflow runtime and the owner loop."""
