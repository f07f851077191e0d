"""On-demand benchmarks of the filter core (not part of the test suite): see bench/README.md."""
