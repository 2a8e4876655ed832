"""Issue 9 section 3: environment variables are validated and take effect; NUMBA_DISABLE_JIT=1 works everywhere."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose

from tests.child import describe, run_python


@pytest.mark.parametrize("name,value,message", [
    ("FASTMLP_BLAS_MIN_FLOPS", "garbage", "FASTMLP_BLAS_MIN_FLOPS must be an integer"),
    ("FASTMLP_BLAS_MIN_FLOPS", str(2**64), "FASTMLP_BLAS_MIN_FLOPS must be an integer between 0 and"),
    ("FASTMLP_BLAS_MIN_FLOPS", "-1", "FASTMLP_BLAS_MIN_FLOPS must be an integer between 0 and"),
    ("FASTMLP_FASTMATH", "FAST", "FASTMLP_FASTMATH may not contain ['fast']"),
    ("FASTMLP_FASTMATH", "nsz,NNan", "FASTMLP_FASTMATH may not contain ['nnan']"),
    ("FASTMLP_FASTMATH", "nsz,turbo", "FASTMLP_FASTMATH holds unknown flags ['turbo']"),
    ("FASTMLP_CACHE", "maybe", "FASTMLP_CACHE must be 1 or 0"),
    ("FASTMLP_SUBNORMALS", "sometimes", "FASTMLP_SUBNORMALS must be 'flush' or 'keep'"),
])
def test_a_bad_environment_variable_is_a_clear_error_naming_it(name, value, message):
    proc = run_python("""
        import numpy as np
        try:  # the variables are read when the kernels are first imported
            from fastmlp import MLP
            MLP([2, 1], output_activation="linear", loss="mse").forward(np.zeros((2, 3)))
        except ValueError as exc:
            print("ValueError:", exc)
        """, env={name: value}, timeout=120)
    assert proc.returncode == 0, describe(proc)
    assert message in proc.stdout, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)


def test_blas_min_flops_at_the_int64_limit_works():
    proc = run_python("""
        import numpy as np
        from fastmlp import MLP
        m = MLP([3, 4, 1], seed=0)
        m.fit(np.ones((3, 5)), np.ones(5), epochs=2)
        print("OK", m.history)
        """, env={"FASTMLP_BLAS_MIN_FLOPS": str(2**63 - 1)}, timeout=300)
    assert proc.returncode == 0 and "OK" in proc.stdout, describe(proc)


def test_changed_fastmath_flags_take_effect_despite_a_warm_cache():
    warm = "import numpy as np\nfrom fastmlp import MLP\nMLP([3, 4, 1], seed=0).forward(np.ones((3, 2)))\n"
    proc = run_python(warm, timeout=300)  # the default flags' kernels are in the disk cache now
    assert proc.returncode == 0, describe(proc)
    proc = run_python("import json\n" + warm + textwrap.dedent("""
        from fastmlp import _config, _kernels as K
        flags = K._forward.targetoptions["fastmath"]
        print(json.dumps({"flags": sorted(getattr(flags, "flags", flags)),
                          "hits": sum(K._forward.stats.cache_hits.values()), "cache": _config.CACHE}))
        """), env={"FASTMLP_FASTMATH": "NSZ, Contract"}, timeout=600)
    assert proc.returncode == 0, describe(proc)
    state = json.loads(proc.stdout.strip().splitlines()[-1])
    assert state["flags"] == ["contract", "nsz"]
    assert state["hits"] == 0, "a kernel compiled under the default flags was loaded from the cache"
    assert state["cache"] is False


# --- NUMBA_DISABLE_JIT=1: every public path runs as plain Python ------------------------------------------------
_WORKLOAD = """
import json, warnings
import numpy as np
from fastmlp import MLP, MLPClassifier, MLPRegressor, functional, reference

warnings.simplefilter("ignore")
r = np.random.RandomState(0)
X = r.randn(4, 12)
y = (X[0] + X[1] > 0).astype(float)
out = {}
for dt in ("float64", "float32"):
    m = MLP([4, 5, 3, 1], hidden_activation="tanh", seed=0, dtype=dt)
    m.fit(X, y, epochs=3, batch_size=5, learning_rate=0.3, shuffle=True, seed=1)
    out["mlp_" + dt] = m.history + [m.cost(X, y)] + m.forward(X).ravel().tolist()
soft = MLP([4, 6, 3], output_activation="softmax", loss="ce", seed=0)
soft.fit(X, np.eye(3)[:, r.randint(0, 3, 12)], epochs=2, batch_size=4, learning_rate=0.2)
out["softmax"] = soft.history
p = reference.initialize_parameters([4, 5, 1], seed=2)
_, costs = functional.train(p, X, y, ["leaky_relu", "sigmoid"], epochs=3, batch_size=4, learning_rate=0.2,
                            shuffle=True, seed=0)
AL, caches = functional.L_model_forward(X, p, ["leaky_relu", "sigmoid"])
grads = functional.L_model_backward(AL, y, caches, ["leaky_relu", "sigmoid"])
functional.update_parameters(p, grads, 0.1)
out["functional"] = costs + AL.ravel().tolist() + p["W1"].ravel().tolist()
for solver in ("adam", "sgd", "lbfgs"):
    c = MLPClassifier(hidden_layer_sizes=(5,), solver=solver, max_iter=4, batch_size=5, random_state=0).fit(X.T, y)
    out["classifier_" + solver] = c.predict_proba(X.T).ravel().tolist()
reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=4, batch_size=5, random_state=0)
reg.fit(X.T, X[2], sample_weight=np.linspace(0.5, 1.5, 12))
reg.partial_fit(X.T, X[2])
out["regressor"] = reg.predict(X.T).tolist() + reg.loss_curve_
RESULT = out
"""


def test_every_public_path_works_with_the_jit_disabled():
    code = _WORKLOAD + "print('RESULT ' + json.dumps(RESULT))\n"
    # BLAS_MIN_FLOPS=0 sends every product through the BLAS helper, whose plain-Python stand-in is checked too
    proc = run_python(code, env={"NUMBA_DISABLE_JIT": "1", "FASTMLP_BLAS_MIN_FLOPS": "0"}, timeout=600)
    assert proc.returncode == 0, describe(proc)
    slow = json.loads(proc.stdout.split("RESULT ", 1)[1])
    space: dict = {}
    exec(compile(_WORKLOAD, "<workload>", "exec"), space)  # the same with the compiled kernels
    fast = space["RESULT"]
    assert slow.keys() == fast.keys()
    for key in fast:
        rtol = 1e-4 if "float32" in key else 1e-9
        assert_allclose(np.asarray(slow[key]), np.asarray(fast[key]), rtol=rtol, atol=1e-12, err_msg=key)
