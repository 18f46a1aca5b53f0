"""Workflow tests: real Snakemake runs and dry runs on 64x128 synthetic frames (marked slow)."""
