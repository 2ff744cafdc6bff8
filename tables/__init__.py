"""Faust tables (RocksDB stores through rocksdict, each backed by a changelog topic)."""
