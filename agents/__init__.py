"""Faust agents: short loops that decode, read a table, call a pure function, write back, send."""
