"""Tabular example: a mixed-type DataFrame, string labels and sample weights.

A synthetic customer table as most scikit-learn users hold their data: numbers
with missing values, an int, a bool, strings, an ordered category. Columns are
selected by name and by dtype in a ColumnTransformer, whose pandas output
feeds HistGradientBoosting with the categories read from their dtype. The
labels are strings ("churn", "stay"), the samples weighted. Every task reads
the DataFrame back as it is here (stored as an Arrow file, nothing pickled);
the results are those of ``cross_validate(GridSearchCV(...), X, y,
params={"sample_weight": w})``.

    python examples/tabular_example.py [WORKDIR] [--small]

``--small``: nested 2 x 2 instead of 4 x 3. Needs the tabular extra: pip
install "mempamal[tabular]" (pandas, pyarrow). A script only, no notebook.
"""
import argparse

# Arguments first: --help answers before pandas and scikit-learn are imported.
parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("workdir", nargs="?", default="runs/tabular_example", help="where to write (default: %(default)s)")
parser.add_argument("--small", action="store_true", help="a smaller problem, to check that it runs")
args = parser.parse_args()
workdir, small = args.workdir, args.small
n_outer, n_inner = (2, 2) if small else (4, 3)

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from mempamal import Experiment, load_results, run

rng = np.random.RandomState(0)
n = 300
age = rng.uniform(18, 80, n)
age[rng.rand(n) < 0.1] = np.nan  # missing values
city = rng.choice(["Paris", "Lyon", "Nice"], n)
X = pd.DataFrame({
    "age": age,
    "income": rng.lognormal(3, 1, n),
    "children": rng.randint(0, 4, n),
    "owner": rng.rand(n) < 0.5,
    "city": pd.Series(city, dtype=object),
    "plan": pd.Categorical(rng.choice(["basic", "plus", "pro"], n), categories=["basic", "plus", "pro"],
                           ordered=True),
})
score = np.nan_to_num(age, nan=50) / 40 + (city == "Paris") + X["owner"] - (X["plan"] == "pro") - 1.2
y = pd.Series(np.where(score + rng.randn(n) * 0.5 > 0, "churn", "stay"), name="label")
sample_weight = np.where(y == "churn", 2.0, 1.0)  # a churner costs twice as much

prep = ColumnTransformer(
    [("num", SimpleImputer(strategy="median"), ["age", "income", "children"]),  # by name
     ("text", OrdinalEncoder(), make_column_selector(dtype_include=object)),  # the strings
     ("flag", "passthrough", make_column_selector(dtype_include=bool))],
    remainder="passthrough",  # the category stays one, read by HistGradientBoosting from its dtype
    verbose_feature_names_out=False,
).set_output(transform="pandas")
pipe = Pipeline([("prep", prep),
                 ("hgb", HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=30,
                                                        random_state=0))])
exp = Experiment(pipe,
                 cv=StratifiedKFold(n_outer, shuffle=True, random_state=0),
                 param_grid={"hgb__max_depth": [2, 3], "hgb__learning_rate": [0.05, 0.2]},
                 inner_cv=StratifiedKFold(n_inner),
                 scoring=["accuracy", "roc_auc"], refit="roc_auc")
exp.write(X, y, workdir, params={"hgb__sample_weight": sample_weight}, overwrite=True)
run(workdir, backend="local", n_jobs=2)
res = load_results(workdir)
print(res.summary())
print("predictions:", pd.Series(res.predictions).value_counts().to_dict())
