"""Data utilities: mini-batch loading (``td.data.DataLoader``, ``td.data.TensorDataset``)."""
from .loader import DataLoader, TensorDataset

__all__ = ["DataLoader", "TensorDataset"]
