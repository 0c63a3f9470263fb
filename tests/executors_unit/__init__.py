"""Pure unit tests: no broker."""
