"""CLI command groups; each module defines `register(app)` and is listed in brain3d.cli.COMMAND_MODULES."""
