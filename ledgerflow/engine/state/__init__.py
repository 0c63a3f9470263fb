"""Per-partition state: RocksDB stores mirrored to a compacted changelog topic."""
