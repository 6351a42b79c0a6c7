"""A local Gemini API for the tests, the benchmarks and `make demo`; no part of the proxy."""
