"""Subcommands of ``traceany``: one module each, auto-discovered by cli.py."""
