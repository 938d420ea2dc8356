"""Where the daemon's servers are and how to reach them: `settings` (environment and .env),
secrets read from files (`secret_files`) and the environment variables of each setting
(`variables`).

May import: `reconciler.domain`, pydantic and pydantic-settings. Read by the wiring and the CLI.
"""
