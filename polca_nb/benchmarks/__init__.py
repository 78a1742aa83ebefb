"""Benchmark environments and evaluators, one subpackage per benchmark (e.g. `tau_retail`)."""
