"""Where the daemon's servers are and how to reach them: `settings` (environment and .env),
secrets read from files (`secret_files`) and the generated settings reference
(`settings_doc`).

May import: `reconciler.domain`, pydantic and pydantic-settings. Read by the wiring and the CLI.
"""
