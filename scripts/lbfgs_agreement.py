"""How closely fastmlp's L-BFGS weights follow scikit-learn's, by iteration count, and how scikit-learn's own
L-BFGS reacts to a rounding-sized change of its input.

For each bundled data set (standardised) and hidden activation, both estimators are fitted with
``solver="lbfgs"``, hidden (16,), ``alpha=1e-3``, ``random_state=0`` and several ``max_iter``; the table shows
both ``n_iter_`` and the largest weight difference relative to the largest weight of its array. The last
lines fit scikit-learn twice, on ``X`` and on ``X * (1 + 4e-16)``, and print the same measure.

Usage::

    python scripts/lbfgs_agreement.py [--max-iter 20 50 100 200]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np


def _relative_difference(a_list, b_list):
    return max(float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)) for a, b in zip(a_list, b_list,
                                                                                         strict=True))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iter", type=int, nargs="+", default=[20, 50, 100, 200])
    args = parser.parse_args(argv)

    from sklearn import neural_network as sk
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris
    from sklearn.preprocessing import StandardScaler

    import fastmlp

    def std(X):
        return StandardScaler().fit_transform(X)

    diabetes = load_diabetes()
    sets = {
        "iris": (std(load_iris().data), load_iris().target, "MLPClassifier"),
        "cancer": (std(load_breast_cancer().data), load_breast_cancer().target, "MLPClassifier"),
        "digits": (std(load_digits().data[:500]), load_digits().target[:500], "MLPClassifier"),
        "diabetes": (std(diabetes.data), (diabetes.target - diabetes.target.mean()) / diabetes.target.std(),
                     "MLPRegressor"),
    }
    warnings.simplefilter("ignore")
    print("| data | activation | max_iter | n_iter_ (scikit-learn, fastmlp) | weight difference |")
    print("|---|---|--:|--:|--:|")
    for name, (X, y, cls) in sets.items():
        for activation in ("identity", "logistic", "tanh", "relu"):
            for max_iter in args.max_iter:
                params = dict(hidden_layer_sizes=(16,), activation=activation, solver="lbfgs", max_iter=max_iter,
                              random_state=0, alpha=1e-3)
                ref = getattr(sk, cls)(**params).fit(X, y)
                ours = getattr(fastmlp, cls)(**params).fit(X, y)
                diff = _relative_difference(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_)
                print(f"| {name} | {activation} | {max_iter} | {ref.n_iter_}, {ours.n_iter_} | {diff:.1e} |",
                      flush=True)

    X, y, _ = sets["iris"]
    print("\nscikit-learn against itself, iris, relu: X versus X * (1 + 4e-16)")
    for max_iter in args.max_iter:
        params = dict(hidden_layer_sizes=(16,), activation="relu", solver="lbfgs", max_iter=max_iter,
                      random_state=0, alpha=1e-3)
        a = sk.MLPClassifier(**params).fit(X, y)
        b = sk.MLPClassifier(**params).fit(X * (1 + 4e-16), y)
        print(f"max_iter {max_iter}: {_relative_difference(b.coefs_ + b.intercepts_, a.coefs_ + a.intercepts_):.1e}")


if __name__ == "__main__":
    main()
