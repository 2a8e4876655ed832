"""The per-step path (``functional``'s forward / backward / update on a plain dict of the caller's own arrays)
when the caller's code or another thread changes those arrays while fastmlp is using them, and when several
threads run their own loops at once. Each case runs in a child: the failure these guard against was a
segmentation fault (an array reshaped to many dimensions reaching a compiled entry point) or buffers shared
between threads (silently wrong results)."""

from __future__ import annotations

import pytest

from tests.child import describe, run_python

SETUP = """
import sys, threading, time
import numpy as np
from fastmlp import functional as F

def make(seed, dims=(3, 5, 4, 1), m=16):
    rng = np.random.RandomState(seed)
    p = {}
    for l in range(1, len(dims)):
        p[f"W{l}"] = rng.randn(dims[l], dims[l - 1]) * 0.5
        p[f"b{l}"] = rng.randn(dims[l], 1) * 0.1
    return p, rng.randn(dims[0], m), (rng.rand(1, m) < 0.5).astype(float)

def steps(p, X, Y, n, lr=0.05):
    for _ in range(n):
        AL, caches = F.L_model_forward(X, p)
        F.update_parameters(p, F.L_model_backward(AL, Y, caches), lr)
    return p

def step_outcomes(p, X, Y, seconds):  # steps (lr 1e-9) for seconds: how many worked, how many raised ValueError
    counts = {}
    t0 = time.time()
    while time.time() - t0 < seconds:
        try:
            steps(p, X, Y, 1, lr=1e-9)
            counts["ok"] = counts.get("ok", 0) + 1
        except ValueError:
            counts["ValueError"] = counts.get("ValueError", 0) + 1
    return counts
"""

OPENBLAS = [pytest.param({}, id="machine"),
            pytest.param({"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None}, id="openblas-unset")]


@pytest.mark.parametrize("env", OPENBLAS)
def test_array_reshaped_by_callers_code_during_the_call_gives_a_value_error(env):
    """A ``leaky_slope`` whose conversion to float (run after the dict's arrays were checked) gives W1 thirty
    dimensions: a ValueError naming the problem, then the loop goes on once W1 is back."""
    code = SETUP + """
p, X, Y = make(0)
steps(p, X, Y, 3)  # (the compiled entry points are known from here on)
class Slope(float):
    def __float__(self):
        p["W1"].shape = (1,) * 30 + (5, 3)
        return 0.01
try:
    F.L_model_forward(X, p, leaky_slope=Slope(0.01))
    print("no error")
except ValueError as exc:
    print("ValueError:", exc)
p["W1"].shape = (5, 3)
want = steps(make(0)[0], X, Y, 5)
got = steps(p, X, Y, 2)
print("equal" if all(np.array_equal(want[k], got[k]) for k in want) else "differs")
"""
    proc = run_python(code, env=env)
    assert proc.returncode == 0, describe(proc)
    lines = proc.stdout.split("\n")
    assert lines[0].startswith("ValueError:"), describe(proc)
    assert lines[1] == "equal", describe(proc)


@pytest.mark.parametrize("env", OPENBLAS)
def test_another_thread_reshaping_the_arrays_never_crashes(env):
    """One thread steps a plain dict while another flips W1 between (4, 3) and sixty-two dimensions: every step
    either works or raises a ValueError (as the reference does), for two seconds of steps."""
    code = SETUP + """
p, X, Y = make(0, dims=(3, 4, 4, 1), m=6)
steps(p, X, Y, 3)
sys.setswitchinterval(1e-6)  # (many switches: the thread lands between any two steps of the calls)
stop = False
def flip():
    W = p["W1"]
    while not stop:
        W.shape = (1,) * 60 + (4, 3); time.sleep(0); W.shape = (4, 3); time.sleep(0)
t = threading.Thread(target=flip, daemon=True)
t.start()
counts = step_outcomes(p, X, Y, 2.0)
stop = True
t.join()
print(sorted(counts))
"""
    proc = run_python(code, env=env)
    assert proc.returncode == 0, describe(proc)
    assert "ValueError" in proc.stdout, describe(proc)  # (the race was reached)


def test_every_other_thread_running_python_code_is_seen():
    """The per-step path trusts checks made a moment before a compiled call only while no other thread can run
    in between: a thread ``threading`` started, and one ``_thread.start_new_thread`` started (which
    ``threading`` does not list), both count."""
    code = """
import _thread, threading, time
from fastmlp import _steps
seen = [_steps._alone()]
for start in ("threading", "_thread"):
    started, release = threading.Event(), _thread.allocate_lock()
    release.acquire()
    def idle():
        started.set()
        release.acquire()
        release.release()
    if start == "threading":
        threading.Thread(target=idle).start()
    else:
        _thread.start_new_thread(idle, ())
    started.wait()
    seen.append(_steps._alone())
    release.release()
    while not _steps._alone():  # (the other thread ending)
        time.sleep(0.001)
print(seen)
"""
    proc = run_python(code)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.split("\n")[0] == "[True, False, False]", describe(proc)


def test_a_thread_started_by_the_thread_module_counts_as_another_thread():
    """``_thread.start_new_thread`` starts threads ``threading`` does not list: one flipping W1 between (4, 3)
    and thirty-two dimensions while this thread steps must make each step work or raise a ValueError (it
    crashed: the per-step path thought itself alone and called an entry point on the re-shaped array)."""
    code = SETUP + """
import _thread
p, X, Y = make(0, dims=(3, 4, 4, 1), m=6)
steps(p, X, Y, 3)
sys.setswitchinterval(1e-6)
stop, done = [False], _thread.allocate_lock()
done.acquire()
def flip():
    W = p["W1"]
    while not stop[0]:
        W.shape = (1,) * 30 + (4, 3); time.sleep(0); W.shape = (4, 3); time.sleep(0)
    done.release()
_thread.start_new_thread(flip, ())
counts = step_outcomes(p, X, Y, 2.0)
stop[0] = True
done.acquire()
print(sorted(counts))
"""
    proc = run_python(code)
    assert proc.returncode == 0, describe(proc)
    assert "ValueError" in proc.stdout, describe(proc)  # (the race was reached)


def test_threads_running_their_own_loops_get_what_each_loop_gives_alone():
    """Four threads, each its own dict, data and 1500 steps, at once: each ends exactly where the same loop
    ends alone (results kept for reuse are not shared between threads)."""
    code = SETUP + """
alone = [steps(*make(i), 1500) for i in range(4)]
sys.setswitchinterval(1e-6)
bad = 0
for rep in range(12):
    got = [None] * 4
    def run(i):
        got[i] = steps(*make(i), 1500)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad += sum(not all(np.array_equal(alone[i][k], got[i][k]) for k in alone[i]) for i in range(4))
print("differing:", bad)
"""
    proc = run_python(code)
    assert proc.returncode == 0, describe(proc)
    assert "differing: 0" in proc.stdout, describe(proc)


def test_with_another_thread_alive_plain_dicts_give_the_same_numbers_and_retyping_never_crashes():
    """While another thread is alive the kernels read views of the caller's arrays made for the call (or copies,
    for arrays they cannot read in place): a plain dict (float64 and float32) then ends exactly where the same loop
    ends with no other thread; and a thread flipping W1's dtype (float64 (4, 3) <-> float32 (4, 6), in place) and
    b2's shape makes each step either work or raise a ValueError, for 1.5 s of steps."""
    code = SETUP + """
def typed(p, dtype):
    return {k: v.astype(dtype) for k, v in p.items()}
p, X, Y = make(1, dims=(3, 4, 4, 1), m=6)
alone = [steps(typed(p, d), X.astype(d), Y.astype(d), 40) for d in (np.float64, np.float32)]
idle = threading.Event()
threading.Thread(target=idle.wait, daemon=True).start()
with_thread = [steps(typed(p, d), X.astype(d), Y.astype(d), 40) for d in (np.float64, np.float32)]
same = all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for a, b in zip(alone, with_thread) for k in p)
print("equal" if same else "differs")
sys.setswitchinterval(1e-6)
stop = False
def flip():
    W, b = p["W1"], p["b2"]
    while not stop:
        W.dtype = np.float32; b.shape = (1, 4); time.sleep(0); W.dtype = np.float64; b.shape = (4, 1); time.sleep(0)
t = threading.Thread(target=flip, daemon=True)
t.start()
counts = step_outcomes(p, X, Y, 1.5)
stop = True
t.join()
idle.set()
print(sorted(counts))
"""
    proc = run_python(code)
    assert proc.returncode == 0, describe(proc)
    lines = proc.stdout.split("\n")
    assert lines[0] == "equal", describe(proc)
    assert "ValueError" in lines[1], describe(proc)  # (the race was reached)


def test_threads_running_loops_of_every_dialect_at_once_get_what_each_gives_alone():
    """While other threads run, each thread reuses only its own kept results (a result goes back to its list a
    moment before it is handed out, when reference counts say nobody holds it: another thread taking it then
    would write into buffers its caller is about to read). Four threads at once, each a loop of another dialect
    on the same network sizes (so the same kept lists, were they shared): ``functional`` on fastmlp's packed
    dict, ``course`` (which returns new parameters each step), ``architecture``, and ``functional`` on a plain
    dict; every one ends exactly where it ends alone, twelve times over."""
    code = SETUP + """
from fastmlp import architecture as A, course as C
dims = (3, 5, 4, 1)
arch = [{"input_dim": dims[l], "output_dim": dims[l + 1], "activation": "relu" if l < 2 else "sigmoid"}
        for l in range(3)]

def packed(seed):
    p, X, Y = make(seed)
    q = F.initialize_parameters(list(dims))
    for k in q:
        q[k][...] = p[k]
    return steps(q, X, Y, 800)

def course(seed):
    p0, X, Y = make(seed)
    p = C.initialize_parameters_deep(list(dims))
    for k in p:
        p[k][...] = p0[k]
    for _ in range(800):
        AL, caches = C.L_model_forward(X, p)
        p = C.update_parameters(p, C.L_model_backward(AL, Y, caches), 0.05)
    return p

def architecture(seed):
    p0, X, Y = make(seed)
    p = A.init_layers(arch)
    for k in p:
        p[k][...] = p0[k]
    for _ in range(800):
        Y_hat, memory = A.full_forward_propagation(X, p, arch)
        p = A.update(p, A.full_backward_propagation(Y_hat, Y, memory, p, arch), arch, 0.05)
    return p

def plain(seed):
    return steps(*make(seed)[:3], 800)

loops = [packed, course, architecture, plain]
alone = [f(i) for i, f in enumerate(loops)]
sys.setswitchinterval(1e-6)
bad = 0
for rep in range(12):
    got = [None] * 4
    def run(i):
        got[i] = loops[i](i)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad += sum(not all(np.array_equal(alone[i][k], got[i][k]) for k in alone[i]) for i in range(4))
print("differing:", bad)
"""
    proc = run_python(code)
    assert proc.returncode == 0, describe(proc)
    assert "differing: 0" in proc.stdout, describe(proc)


@pytest.mark.parametrize("env", OPENBLAS)
def test_another_thread_reshaping_X_in_place_never_crashes(env):
    """A thread flipping ``X`` between ``(3, 64)`` and ``(1, 192)`` in place (same dimensions, dtype and layout,
    so the same compiled type) while this one steps on fastmlp's packed dict: the kernels were handed a shape
    other than the one checked (and wrote past their buffers: a crash within a second); now each step works or
    raises a ValueError naming the problem, and the parameters stay finite."""
    code = SETUP + """
sys.setswitchinterval(1e-6)
rng = np.random.RandomState(0)
p = F.initialize_parameters([3, 8, 1])
X = rng.randn(3, 64); Y = (rng.rand(1, 64) < 0.5).astype(float)
steps(p, X, Y, 2)
stop = False
def flip():
    while not stop:
        X.shape = (1, 192); time.sleep(0); X.shape = (3, 64); time.sleep(0)
t = threading.Thread(target=flip, daemon=True)
t.start()
counts = step_outcomes(p, X, Y, 1.5)
stop = True
t.join()
print(sorted(counts), all(np.isfinite(v).all() for v in p.values()))
"""
    proc = run_python(code, env=env)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.split("\n")[0] == "['ValueError', 'ok'] True", describe(proc)
