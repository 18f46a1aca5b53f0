"""CLI tests: every stage script run as a user runs it (argparse, the call, the one error line)."""
