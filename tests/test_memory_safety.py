"""Memory safety of the kernels' borrowed views (docs/DESIGN.md, "Memory safety").

A view without a reference count (``_kernels._borrow``) must point only into a kernel's own arguments.
A view into a kernel's *local* array reads freed memory once Numba has freed that local -- the
use-after-free that crashed ``MLPRegressor.fit`` when OpenBLAS ran its SkylakeX kernels (issue 9).
That bug depended on who reused the freed block, so it hid under ``OPENBLAS_CORETYPE=Haswell``.

These tests make freed memory *visibly* wrong instead, whatever BLAS does: the child process runs with
glibc's ``MALLOC_PERTURB_`` (every freed block is overwritten with a fill byte at once) and the per-thread
cache turned off (so that small blocks take the path that fills them). A borrowed view into freed memory
then reads garbage offsets or scalars: a crash or different numbers. The same training run with and
without the perturbation must exit cleanly and print the same numbers. Both failed before the fix. (The
numbers are compared to a tolerance, not digit for digit: vectorised loops and BLAS round differently when
arrays land at addresses of another alignment, which moves the last bit or two; freed memory read as
offsets or scalars gives garbage or a crash.)
"""

from __future__ import annotations

import ast
import pathlib
import re

import numpy as np
import pytest

from tests.child import describe, run_python

PERTURB = {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0", "MALLOC_PERTURB_": "165"}

#: every training and prediction path that reaches a kernel, printed as full-precision digits
TRAIN_EVERY_PATH = """
import numpy as np
from fastmlp import MLP, functional
from fastmlp._engine import Network, Optimizer, train_epochs
r = np.random.RandomState(0)
np.set_printoptions(precision=17)
for dtype in ("float64", "float32"):
    for sizes, opt, acts in [([10, 34, 19, 1], "adam", ["relu", "relu", "linear"]),
                             ([3, 5, 2], "sgd", ["tanh", "sigmoid"]),
                             ([20, 64, 32, 3], "nesterov", ["relu", "leaky_relu", "softmax"]),
                             ([4, 7, 1], "momentum", ["sigmoid", "linear"])]:
        net = Network(sizes, acts, dtype=dtype)
        net.params[:] = r.randn(net.params.size) * 0.1
        X = r.randn(sizes[0], 153).astype(dtype)  # samples are columns
        Y = r.rand(sizes[-1], 153).astype(dtype)
        if acts[-1] == "softmax":
            Y = Y / Y.sum(axis=0, keepdims=True)
        loss = {"linear": "half_mse", "sigmoid": "bce", "softmax": "ce"}[acts[-1]]
        order = np.stack([r.permutation(153) for _ in range(3)])
        for use_order in (order, None):
            res = train_epochs(net, X, Y, loss, learning_rate=1e-2, epochs=3, batch_size=16,
                               optimizer=Optimizer(net, opt), order=use_order, alpha=1e-3)
            print(sizes, opt, res.mean_batch_cost, net.params[:5], net.params[-3:])
    model = MLP([5, 8, 1], dtype=dtype, seed=0)
    Xc = r.randn(5, 200).astype(dtype)
    Yc = (r.rand(1, 200) > 0.5).astype(dtype)
    model.fit(Xc, Yc, epochs=4, learning_rate=0.1, batch_size=32, shuffle=True, seed=1)
    print(model.forward(Xc)[0, :5], model.cost(Xc, Yc))
    params = {k: v.astype(dtype) for k, v in model.get_parameters().items()}
    AL, caches = functional.L_model_forward(Xc, params)
    grads = functional.L_model_backward(AL, Yc, caches)
    print(AL[0, :5], grads["dW1"][0])
    # a user's own loop (the per-step kernels, compiled without reference counting: every array they read is
    # an argument or an element of an argument tuple), on a plain dict and on one fastmlp made
    for p in (params, functional.initialize_parameters([5, 8, 1], seed=0, dtype=dtype)):
        for _ in range(3):
            AL, caches = functional.L_model_forward(Xc, p, ["tanh", "sigmoid"])
            cost = functional.compute_cost(AL, Yc)
            functional.update_parameters(p, functional.L_model_backward(AL, Yc, caches, ["tanh", "sigmoid"]), 0.1)
        print(cost, AL[0, :5], p["W1"][0], p["b2"])
from fastmlp import MLPClassifier, MLPRegressor
X = r.randn(153, 10)
y = r.randn(153)
w = r.rand(153)
for solver in ("adam", "sgd", "lbfgs"):
    reg = MLPRegressor(hidden_layer_sizes=(34, 19), solver=solver, max_iter=3, random_state=0).fit(X, y)
    print(reg.coefs_[0][0], reg.predict(X[:5]))
    reg = MLPRegressor(hidden_layer_sizes=(34, 19), solver=solver, max_iter=3, random_state=0).fit(X, y, w)
    print(reg.coefs_[0][0], reg.predict(X[:5]))
    clf = MLPClassifier(hidden_layer_sizes=(16,), solver=solver, max_iter=3, random_state=0).fit(X, y > 0)
    print(clf.coefs_[0][0], clf.predict_proba(X[:5]))
import scipy.sparse as sp
Xs = sp.random(153, 10, density=0.3, format="csr", random_state=0)
for fmt in ("csr", "csc"):
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(Xs.asformat(fmt), y > 0)
    print(clf.coefs_[0][0], clf.predict_proba(Xs.asformat(fmt)[:5]))
reg = MLPRegressor(loss="poisson", hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, np.abs(y), w)
print(reg.coefs_[0][0], reg.predict(X[:5]))
"""


@pytest.mark.filterwarnings("ignore")
def test_borrowed_views_never_read_freed_memory():
    plain = run_python(TRAIN_EVERY_PATH)
    assert plain.returncode == 0, describe(plain)
    perturbed = run_python(TRAIN_EVERY_PATH, env=PERTURB)
    assert perturbed.returncode == 0, describe(perturbed)
    assert plain.stdout.count("\n") > 20  # every path printed
    numbers = [np.array(re.findall(r"-?\d+\.?\d*(?:e[-+]?\d+)?", proc.stdout), dtype=float)
               for proc in (plain, perturbed)]
    assert numbers[0].shape == numbers[1].shape
    np.testing.assert_allclose(numbers[1], numbers[0], rtol=1e-4, atol=1e-6)


def _borrowed_names(call):
    """The variable a ``_borrow(...)`` argument views: ``x`` for ``x``, ``x.reshape(...)``, ``x[...]``."""
    node = call.args[0]
    while True:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            node = node.func.value
        elif isinstance(node, (ast.Subscript, ast.Attribute)):
            node = node.value
        else:
            return node


def test_every_borrow_is_of_an_argument_of_the_borrowing_kernel():
    """The borrow rule, checked on the source of every fastmlp module: ``_borrow(x)`` only where ``x`` (or the
    array it is a reshape, slice or attribute of) is a parameter of the enclosing function, and never a name
    that the function rebinds before borrowing it (a parameter may be rebound to its own borrowed view)."""
    import fastmlp

    package = pathlib.Path(fastmlp.__file__).parent
    checked = 0
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef):
                continue
            params = {a.arg for a in func.args.args + func.args.kwonlyargs}
            rebound = {}  # name -> first line where it is bound to something other than a borrowed view
            for node in ast.walk(func):
                if isinstance(node, ast.Assign):
                    values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                    borrowed = all(isinstance(v, ast.Call) and getattr(v.func, "id", None) == "_borrow"
                                   for v in values)
                    for target in node.targets:
                        for name in ast.walk(target):
                            if isinstance(name, ast.Name) and not borrowed:
                                rebound[name.id] = min(rebound.get(name.id, node.lineno), node.lineno)
            for call in ast.walk(func):
                if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "_borrow"):
                    continue
                if func.name == "_borrow":
                    continue
                target = _borrowed_names(call)
                assert (isinstance(target, ast.Name) and target.id in params
                        and rebound.get(target.id, call.lineno + 1) > call.lineno), (
                    f"{path.name}:{call.lineno}: {func.name} borrows {ast.unparse(call.args[0])}, which is not one of "
                    f"its own arguments (see _kernels._borrow)")
                checked += 1
    assert checked > 0
