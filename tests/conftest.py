"""Shared by every test folder (core/, toolkit/, examples/).

trio_mode is set in pyproject.toml; the trio_context plugin is loaded through its entry point.
Helpers the folders share (paths, /proc readers, ``serving()``) live in ``support.py``.
"""
