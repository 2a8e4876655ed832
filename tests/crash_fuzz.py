"""The crash fuzz: random training problems, each run in its own child process (docs/DESIGN.md, "Memory safety").

A case is a small JSON-able dict: which path (``MLP``, ``functional`` checked against ``reference``, the
engine, the two estimators), the architecture, activations, loss, solver, batch size, dtype, data scale,
and whether products run on BLAS or on the compiled loops (``FASTMLP_BLAS_MIN_FLOPS``). Half of the cases
also run with glibc's ``MALLOC_PERTURB_``, so that a read of freed memory gives garbage instead of
passing unnoticed. A case passes when its child exits 0: it trained (finite results), or it refused
with a clear ``ValueError`` / ``FloatingPointError`` (a diverging run). A crash, a hang (timeout), any other
exception (a traceback from inside a kernel), a non-finite result from a finished run, or a mismatch
between ``functional`` and ``reference`` fails it.

Used by ``tests/test_crash_fuzz.py`` (a few cases, in CI) and ``scripts/fuzz.py`` (as many as you like).
"""

from __future__ import annotations

import json

import numpy as np

from tests.child import describe, run_python

HIDDEN = ["relu", "leaky_relu", "sigmoid", "tanh", "linear"]
PATHS = ["mlp", "functional", "engine", "classifier", "regressor"]
PERTURB = {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0", "MALLOC_PERTURB_": "165"}
#: every product on BLAS, or every product on the compiled loops
BLAS_MODES = {"blas": "0", "loops": str(10**12)}


def make_case(rng: np.random.RandomState, path: str | None = None) -> dict:
    """One random case; ``rng`` decides everything, so a case is reproducible from its seed."""
    path = path or PATHS[rng.randint(len(PATHS))]
    n_hidden = rng.randint(0 if path in ("mlp", "functional", "engine") else 1, 4)
    hidden = [int(rng.choice([1, 2, 3, 5, 8, 17, 34, 64])) for _ in range(n_hidden)]
    n_in = int(rng.choice([1, 2, 3, 7, 12, 30]))
    n_out = int(rng.choice([1, 1, 2, 3, 5]))
    m = int(rng.choice([1, 2, 4, 31, 64, 153, 300]))
    case = {
        "path": path,
        "seed": int(rng.randint(2**31)),
        "dims": [n_in, *hidden, n_out],
        "hidden": str(rng.choice(HIDDEN)),
        "m": m,
        "batch_size": int(rng.choice([1, 2, 16, 32, 200, 1000])),
        "dtype": str(rng.choice(["float32", "float64"])),
        "scale": float(10.0 ** rng.randint(-3, 4)),
        "learning_rate": float(rng.choice([1e-4, 1e-2, 0.3, 5.0])),
        "epochs": int(rng.randint(1, 4)),
        "shuffle": bool(rng.rand() < 0.5),
        "alpha": float(rng.choice([0.0, 1e-4, 0.1])),
        "blas": str(rng.choice(list(BLAS_MODES))),
        "perturb": bool(rng.rand() < 0.5),
    }
    output, loss = [("sigmoid", "bce"), ("linear", "mse"), ("softmax", "ce"), ("sigmoid", "mse"),
                    ("tanh", "mse")][rng.randint(5)]
    case["output"], case["loss"] = output, loss
    case["solver"] = str(rng.choice(["sgd", "adam", "lbfgs"]))
    case["momentum"] = float(rng.choice([0.0, 0.9]))
    case["nesterov"] = bool(rng.rand() < 0.5)
    case["schedule"] = str(rng.choice(["constant", "invscaling", "adaptive"]))
    case["early_stopping"] = bool(rng.rand() < 0.3)
    case["partial_fit"] = bool(rng.rand() < 0.3)
    case["sample_weight"] = bool(rng.rand() < 0.3)
    case["sparse"] = str(rng.choice(["dense", "dense", "csr", "csc"]))
    case["poisson"] = bool(path == "regressor" and rng.rand() < 0.25)
    return case


#: the child: runs one case from its JSON argument; exit 0 = trained or refused cleanly
CHILD = r'''
import json, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
case = json.loads(sys.argv[1])
rng = np.random.RandomState(case["seed"])
dt = np.dtype(case["dtype"])
dims, m = case["dims"], case["m"]
n_in, n_out = dims[0], dims[-1]
X = (rng.randn(n_in, m) * case["scale"]).astype(dt)
if case["loss"] == "ce":
    Y = np.eye(n_out, dtype=dt)[:, rng.randint(n_out, size=m)] if n_out > 1 else np.ones((1, m), dt)
elif case["loss"] == "bce" or case["output"] == "sigmoid":
    Y = (rng.rand(n_out, m) > 0.5).astype(dt)
else:
    Y = rng.randn(n_out, m).astype(dt)
acts = [case["hidden"]] * (len(dims) - 2) + [case["output"]]

def finite(*arrays):
    for a in arrays:
        if not np.all(np.isfinite(np.asarray(a, dtype=float))):
            print("NON-FINITE result"); sys.exit(4)

try:
    if case["path"] == "mlp":
        from fastmlp import MLP
        model = MLP(dims, loss=case["loss"], activations=acts, dtype=dt, seed=case["seed"] % 1000)
        model.fit(X, Y, epochs=case["epochs"], learning_rate=case["learning_rate"],
                  batch_size=case["batch_size"], shuffle=case["shuffle"], seed=1)
        out = model.forward(X)
        assert out.dtype == dt and out.shape == (n_out, m)
        finite(out, model.cost(X, Y), model.history, *model.get_parameters().values())
    elif case["path"] == "functional":
        from fastmlp import functional as F
        from fastmlp import reference as R
        params = R.initialize_parameters(dims, init="he", seed=case["seed"] % 1000, dtype=dt)
        AL, caches = F.L_model_forward(X, params, activations=acts)
        AL_ref, caches_ref = R.L_model_forward(X, params, activations=acts)
        tol = {"rtol": 1e-8, "atol": 1e-10} if dt == np.float64 else {"rtol": 1e-3, "atol": 1e-4}
        np.testing.assert_allclose(AL, AL_ref, **tol)
        grads = F.L_model_backward(AL, Y, caches, activations=acts, loss=case["loss"])
        grads_ref = R.L_model_backward(AL_ref, Y, caches_ref, activations=acts, loss=case["loss"])
        for key in grads_ref:
            if key.startswith("dW") or key.startswith("db"):
                scale = max(1.0, float(np.max(np.abs(grads_ref[key]))))
                np.testing.assert_allclose(grads[key] / scale, grads_ref[key] / scale, **tol)
        finite(AL, *grads.values())
        params, costs = F.train(params, X, Y, activations=acts, loss=case["loss"],
                                learning_rate=case["learning_rate"], epochs=case["epochs"],
                                batch_size=case["batch_size"], shuffle=case["shuffle"], seed=2)
        finite(costs, *params.values())
    elif case["path"] == "engine":
        from fastmlp._engine import Network, Optimizer, train_epochs
        net = Network(dims, acts, dtype=dt)
        net.params[:] = rng.randn(net.params.size) * 0.3
        kind = "adam" if case["solver"] == "adam" else ("nesterov" if case["nesterov"] else "momentum")
        order = np.stack([rng.permutation(m) for _ in range(case["epochs"])]) if case["shuffle"] else None
        loss = "half_mse" if case["loss"] == "mse" else case["loss"]
        res = train_epochs(net, np.ascontiguousarray(X), np.ascontiguousarray(Y), loss,
                           learning_rate=case["learning_rate"], epochs=case["epochs"],
                           batch_size=case["batch_size"], alpha=case["alpha"], optimizer=Optimizer(net, kind),
                           order=order)
        finite(res.mean_batch_cost, net.params)
    else:
        from fastmlp import MLPClassifier, MLPRegressor
        sk_activation = {"linear": "identity", "sigmoid": "logistic"}.get(case["hidden"], case["hidden"])
        options = dict(hidden_layer_sizes=tuple(dims[1:-1]), activation=sk_activation,
                       solver=case["solver"], alpha=case["alpha"],
                       batch_size=min(case["batch_size"], m), learning_rate=case["schedule"],
                       learning_rate_init=min(case["learning_rate"], 0.5), max_iter=case["epochs"] * 3,
                       shuffle=case["shuffle"], random_state=case["seed"] % 1000,
                       momentum=case["momentum"], nesterovs_momentum=case["nesterov"],
                       early_stopping=case["early_stopping"] and m >= 20 and not case["partial_fit"])
        Xr = np.ascontiguousarray(X.T)
        if case["sparse"] != "dense":
            import scipy.sparse as sp
            Xr[np.abs(Xr) < np.median(np.abs(Xr))] = 0
            Xr = sp.csr_matrix(Xr).asformat(case["sparse"])
        weights = rng.rand(m) if case["sample_weight"] else None
        if case["path"] == "classifier":
            y = rng.randint(max(n_out, 2), size=m)
            if len(np.unique(y)) < 2:
                y[:1] = 0; y[-1:] = 1
            est = MLPClassifier(**options)
        else:
            y = np.ascontiguousarray(Y.T) if n_out > 1 else Y[0]
            if case["poisson"]:
                y = np.abs(y)
            est = MLPRegressor(loss="poisson" if case["poisson"] else "squared_error", **options)
        if case["partial_fit"] and case["solver"] != "lbfgs":
            for _ in range(2):
                if case["path"] == "classifier":
                    est.partial_fit(Xr, y, classes=np.unique(y), sample_weight=weights)
                else:
                    est.partial_fit(Xr, y, sample_weight=weights)
        else:
            est.fit(Xr, y, sample_weight=weights)
        pred = est.predict(Xr)
        finite(*est.coefs_, *est.intercepts_)
        if case["path"] == "regressor":
            finite(pred)
        else:
            finite(est.predict_proba(Xr))
except (ValueError, FloatingPointError) as exc:
    print("refused:", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
    sys.exit(0)
print("trained")
'''


def run_case(case: dict, *, openblas_unset: bool = False, timeout: float = 300):
    """Run ``case`` in a child process; return the finished process."""
    env = {"FASTMLP_BLAS_MIN_FLOPS": BLAS_MODES[case["blas"]]}
    if case["perturb"]:
        env.update(PERTURB)
    if openblas_unset:
        env.update({"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None})
    return run_python(CHILD, json.dumps(case), env=env, timeout=timeout)


def failure(case: dict, proc) -> str:
    return f"case {json.dumps(case)}\n{describe(proc)}"
