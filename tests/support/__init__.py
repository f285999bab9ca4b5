"""Helpers for the template and build tests (no test functions here)."""
