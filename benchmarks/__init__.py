"""talkanim's benchmarks: `python -m benchmarks` (see benchmarks/run.py and PERFORMANCE.md)."""
