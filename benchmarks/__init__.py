"""Ratio benchmarks: each module prints a report whose ratios are measured in one run."""
