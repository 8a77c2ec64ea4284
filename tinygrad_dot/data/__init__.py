"""Data utilities: mini-batch loading (``td.data.DataLoader``, ``td.data.TensorDataset``) and datasets."""
from .datasets import DatasetSplit, list_datasets, load_dataset, load_file  # embedded datasets and CSV/NPZ files
from .loader import DataLoader, Dataset, TensorDataset, default_collate
from .text import make_sparse_text  # a text-like sparse problem, built deterministically (README.md here)
