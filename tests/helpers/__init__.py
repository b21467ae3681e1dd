"""Test helpers (importable as ``helpers``: pytest puts ``tests/`` on the path); never part of the product."""
