"""Benchmarks against torch: python -m benchmarks (speed, memory) and python -m benchmarks.train
(the chapter's ConvNet, step for step against torch)."""
