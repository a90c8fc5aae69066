"""Benchmarks of LMDBJobStore against APScheduler's own job stores: ``python -m benchmarks``."""
