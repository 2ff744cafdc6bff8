"""The Faust application: ``faust -A streams.app worker``."""
