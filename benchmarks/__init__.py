"""Speed benchmarks of backendai-hub, run with ``python -m benchmarks`` (see README.md)."""
