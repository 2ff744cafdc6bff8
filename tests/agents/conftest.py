import streams.app  # noqa: F401  (the app, its topics, tables and agents, in their order)
