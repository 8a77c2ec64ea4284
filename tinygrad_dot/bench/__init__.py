"""Benchmarks that ship with the package, so that ``tinygrad-dot bench`` works
wherever it is installed: ``train`` (softmax regression on the CPU, and on a GPU
when asked, against a hand-written NumPy loop and PyTorch). The scripts in the
source checkout's benchmarks/ folder call these modules."""
