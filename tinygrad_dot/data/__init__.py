from .datasets import DatasetSplit, list_datasets, load_dataset, load_file  # embedded datasets and CSV/NPZ files
