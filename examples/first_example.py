"""First example: a cross-validated F1 score, no model selection.

iris, StandardScaler + LogisticRegression, stratified 5-fold cross-validation,
weighted F1, run on the local back-end.
"""
import sys

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment, load_results, run

workdir = sys.argv[1] if len(sys.argv) > 1 else "runs/first_example"

X, y = load_iris(return_X_y=True)
pipe = Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())])
exp = Experiment(pipe, cv=StratifiedKFold(5, shuffle=True, random_state=0), scoring="f1_weighted")
exp.write(X, y, workdir)
run(workdir, backend="local", n_jobs=2)
print(load_results(workdir).summary())
