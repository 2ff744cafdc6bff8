"""Fakes of what is outside the project (exchange HTTP), for tests."""
