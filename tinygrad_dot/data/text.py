"""A text-like sparse problem, built deterministically: ``make_sparse_text``.

Documents are bags of words drawn from a Zipf-distributed vocabulary, weighted as
TF-IDF with unit-length rows (what scikit-learn's TfidfVectorizer gives), and the
target depends on a few hundred informative words of middling frequency. How it
is made, step by step, is in this folder's README.md.
"""
from __future__ import annotations

import numpy as np

ZIPF_EXPONENT = 1.07   # word frequency ~ 1 / (rank + ZIPF_SHIFT) ** ZIPF_EXPONENT (Zipf-Mandelbrot)
ZIPF_SHIFT = 2.7       # (close to the fits reported for English corpora)


def _tokens_for(probabilities, distinct: float) -> float:
    """Tokens per document whose expected number of distinct words is ``distinct``
    (E[distinct] = sum_j 1 - (1 - p_j)^T, increasing in T: bisection on log T)."""
    log_keep = np.log1p(-probabilities)
    low, high = 0.0, 30.0  # log T
    for _ in range(60):
        mid = 0.5 * (low + high)
        if np.sum(-np.expm1(np.exp(mid) * log_keep)) < distinct:
            low = mid
        else:
            high = mid
    return float(np.exp(0.5 * (low + high)))


def make_sparse_text(n_samples: int = 2000, n_features: int = 50_000, density: float = 0.005, *,
                     n_informative: int = 300, task: str = "classification", signal: float = 4.0,
                     noise: float = 0.1, dtype=np.float64, random_state=0, return_coef: bool = False):
    """A sparse text-like data set: (X, y), or (X, y, coef, intercept) with ``return_coef``.

    X: scipy.sparse.csr_matrix (n_samples, n_features) of ``dtype``, TF-IDF weights of word
    counts with unit-length rows, about ``density`` of its entries stored (distinct words per
    document ~ density * n_features, document lengths varying log-normally around that).
    y: 0/1 labels drawn with probability sigmoid(z) (``task="classification"``: logistic noise,
    so the best accuracy is below 1), or z plus Gaussian noise of ``noise`` times z's spread
    (``task="regression"``), where z = X coef + intercept with ``n_informative`` nonzero
    coefficients on words of ranks 20 to 20 + 20 * n_informative, scaled so that z's standard
    deviation is ``signal``. The same arguments always give the same data."""
    import scipy.sparse

    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    if not 0 < density < 1:
        raise ValueError(f"density must lie in (0, 1), got {density!r}")
    if n_samples < 1 or n_features < 1 or not 0 < n_informative <= n_features:
        raise ValueError(f"need n_samples >= 1, n_features >= 1 and 0 < n_informative <= n_features, got "
                         f"{n_samples}, {n_features}, {n_informative}")
    rng = np.random.default_rng(random_state)
    ranks = np.arange(n_features, dtype=np.float64)
    p = (ranks + ZIPF_SHIFT) ** -ZIPF_EXPONENT
    p /= p.sum()
    # Document lengths: log-normal around the token count that gives `density` distinct words.
    mean_tokens = _tokens_for(p, density * n_features)
    sigma = 0.5
    lengths = np.maximum(1, np.round(mean_tokens * rng.lognormal(-sigma * sigma / 2, sigma, n_samples))).astype(np.int64)
    # Words are ranks; a random permutation maps ranks to column numbers, so that frequent
    # words do not all sit in the first columns (as in a vectorizer's alphabetical vocabulary).
    column_of_rank = rng.permutation(n_features)
    cumulative = np.cumsum(p)
    rows = np.repeat(np.arange(n_samples), lengths)
    words = np.minimum(np.searchsorted(cumulative, rng.random(rows.size) * cumulative[-1]), n_features - 1)
    counts = scipy.sparse.csr_matrix((np.ones(rows.size), (rows, column_of_rank[words])),
                                     shape=(n_samples, n_features))
    counts.sum_duplicates()
    counts.sort_indices()
    # TF-IDF with smoothed idf and unit-length rows (TfidfVectorizer's defaults, sublinear tf).
    document_frequency = np.bincount(counts.indices, minlength=n_features)
    idf = np.log((1.0 + n_samples) / (1.0 + document_frequency)) + 1.0
    counts.data = np.log1p(counts.data) * idf[counts.indices]
    norms = np.sqrt(np.add.reduceat(counts.data ** 2, counts.indptr[:-1]))  # every document has a word
    counts.data /= np.repeat(norms, np.diff(counts.indptr))
    X = counts.astype(dtype)
    # Ground truth: informative words of middling frequency (not the commonest "stop words",
    # not words too rare to learn), with Gaussian weights.
    span = np.arange(min(20, n_features - n_informative), min(n_features, 20 + 20 * n_informative))
    informative = column_of_rank[rng.choice(span, size=n_informative, replace=False)]
    coef = np.zeros(n_features)
    coef[informative] = rng.standard_normal(n_informative)
    z = X.astype(np.float64) @ coef
    spread = z.std()
    coef *= signal / spread if spread > 0 else 1.0
    intercept = -float(np.mean(X.astype(np.float64) @ coef))  # balanced classes, a centred target
    z = X.astype(np.float64) @ coef + intercept
    if task == "classification":
        y = (rng.random(n_samples) < 0.5 * (1 + np.tanh(0.5 * z))).astype(np.int64)
    else:
        y = z + noise * signal * rng.standard_normal(n_samples)
    return (X, y, coef, intercept) if return_coef else (X, y)
