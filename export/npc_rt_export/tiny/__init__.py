"""Tiny random-weight pipelines built from diffusers/transformers configs, with real-kind tokenizers.

Used by the tests, the benchmarks and the shipped demo engine: no model hub is needed, and a seed
gives the same files every time.
"""
