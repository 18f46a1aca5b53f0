"""The benchmark: timing a variant, latency statistics, and the speed table beside the reference."""
