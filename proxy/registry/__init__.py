"""HSF-like registry model and its backends (embedded, ZooKeeper)."""
