"""Side-by-side benchmarks of Berth against reference registries; see bench/README.md.

Run by hand (python3 bench/run.py), never by the test suite.
"""
