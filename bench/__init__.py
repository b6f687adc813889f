"""Benchmarks (not tests): our pipeline's rate beside the raw client's, in the same run."""
