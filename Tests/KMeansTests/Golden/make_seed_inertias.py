"""Writes sklearn_inertia_seeds.json: scikit-learn's best inertia per class for
seeds 1-4 on the golden features (same settings as the golden's seed 0:
k 10, n_init 10, k-means++, Lloyd, max_iter 300, tol 1e-4, float32).
Run from this folder; recorded with scikit-learn 1.9.1 and NumPy 2.4."""
import json
import numpy as np
import sklearn
from sklearn.cluster import KMeans

features = np.load("features.npy")
labels = np.load("labels20.npy")
inertia = {}
for seed in range(1, 5):
    inertia[str(seed)] = [
        float(KMeans(10, n_init=10, random_state=seed, algorithm="lloyd", max_iter=300, tol=1e-4)
              .fit(features[labels[:, c] == 1]).inertia_)
        for c in range(20)
    ]
json.dump({"sklearn": sklearn.__version__, "numpy": np.__version__, "inertia_per_seed": inertia},
          open("sklearn_inertia_seeds.json", "w"), indent=1)
