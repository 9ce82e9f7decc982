"""Textual terminal UI joining jobs, spend and training metrics (built by the TUI issue)."""
