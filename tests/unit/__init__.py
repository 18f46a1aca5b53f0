"""Unit tests: the package's functions, and a module's own CLI checks where they share its fixtures."""
