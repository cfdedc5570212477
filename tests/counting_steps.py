"""A real transformer that counts its fits (importable by module path, as experiments require)."""
from sklearn.preprocessing import StandardScaler

FITS = []


class CountingScaler(StandardScaler):
    """StandardScaler that records the parameters of each fit in FITS."""

    def fit(self, X, y=None, sample_weight=None):
        FITS.append((self.with_mean, self.with_std, X.shape))
        return super().fit(X, y, sample_weight)
