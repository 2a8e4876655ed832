"""The fastmlp command: each path run as a real subprocess, plus the rules it applies, in process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastmlp import _tabular, cli

ENV = {**os.environ, "FASTMLP_PROGRESS": "plain", "PYTHONWARNINGS": "ignore"}


def run(*args, cwd=None, timeout=240):
    """``python -m fastmlp ARGS`` -> CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "fastmlp", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=timeout)


def assert_usage_error(proc, *fragments):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # one line, no traceback
    assert lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A small binary problem with text labels (CSV), and a model trained on it by the command."""
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.RandomState(0)
    X = rng.randn(80, 3) * [1.0, 10.0, 0.1] + [0.0, 50.0, -3.0]
    y = np.where(X[:, 0] + (X[:, 1] - 50) / 10 > 0, "pos", "neg")
    lines = ["alpha,beta,gamma,label"] + [f"{a!r},{b!r},{c!r},{t}" for (a, b, c), t in zip(X.tolist(), y)]
    (d / "train.csv").write_text("\n".join(lines) + "\n")
    # the same features without the label, columns in another order
    lines = ["gamma,alpha,beta"] + [f"{c!r},{a!r},{b!r}" for a, b, c in X.tolist()]
    (d / "nolabel.csv").write_text("\n".join(lines) + "\n")
    return d


@pytest.fixture(scope="module")
def trained(data):
    proc = run("train", data / "train.csv", "--target", "label", "--out", data / "model.npz", "--hidden", "8",
               "--epochs", "60", "--lr", "0.1", "--batch-size", "16", "--seed", "3", "--plot", data / "curve.png")
    assert proc.returncode == 0, proc.stderr
    return proc


# ------------------------------------------------------------------------------------------ happy paths


def test_train(data, trained):
    out = trained.stdout
    assert "training 3-8-1 relu net, loss bce, on 64 rows (16 held out), 60 epochs, batch 16" in out
    assert "train accuracy" in out and "validation accuracy" in out
    assert "saved model to" in out
    assert "epoch 60/60" in trained.stderr  # progress (plain lines: FASTMLP_PROGRESS=plain)
    assert (data / "curve.png").read_bytes().startswith(b"\x89PNG")
    from fastmlp import io

    model, pre = io.load_model(data / "model.npz", return_preprocessing=True)
    assert model.layer_dims == [3, 8, 1] and len(model.history) == 60
    assert pre["task"] == "binary" and pre["classes"].tolist() == ["neg", "pos"]
    assert pre["feature_names"].tolist() == ["alpha", "beta", "gamma"] and pre["target_name"] == "label"
    assert abs(pre["mean"][1] - 50) < 5 and pre["std"].shape == (3,)
    acc = float(out.split("train accuracy ")[1].split(",")[0])
    assert acc > 0.85


def test_predict(data, trained):
    proc = run("predict", data / "model.npz", data / "train.csv", "--out", data / "pred.csv")
    assert proc.returncode == 0, proc.stderr
    assert "wrote 80 predictions" in proc.stdout
    assert "accuracy" in proc.stdout and "against column 'label'" in proc.stdout
    rows = (data / "pred.csv").read_text().splitlines()
    assert rows[0] == "prediction,proba_neg,proba_pos" and len(rows) == 81
    labels = [r.split(",")[0] for r in rows[1:]]
    assert set(labels) <= {"neg", "pos"}
    p = np.array([[float(v) for v in r.split(",")[1:]] for r in rows[1:]])
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-6)
    acc = float(proc.stdout.split("accuracy ")[1].split()[0])
    truth = [line.rsplit(",", 1)[1] for line in (data / "train.csv").read_text().splitlines()[1:]]
    assert acc == pytest.approx(np.mean(np.array(labels) == np.array(truth)))

    # features found by name in another column order, no target column: same predictions, no score
    proc = run("predict", data / "model.npz", data / "nolabel.csv", "--out", data / "pred2.csv")
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" not in proc.stdout
    assert (data / "pred2.csv").read_text() == (data / "pred.csv").read_text()


def test_info():
    exe = shutil.which("fastmlp", path=os.path.dirname(sys.executable))
    cmd = [exe, "info"] if exe else [sys.executable, "-m", "fastmlp", "info"]  # the console script if installed
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for key in ("fastmlp", "numpy", "numba", "scipy", "python", "numba threading layer", "compile cache",
                "OPENBLAS_CORETYPE", "BLAS"):
        assert f"\n{key} " in "\n" + proc.stdout, key


def test_info_says_whether_the_compile_cache_would_be_hit(tmp_path):
    """With an empty cache directory nothing can be loaded: ``info`` says the first use compiles."""
    env = dict(ENV, NUMBA_CACHE_DIR=str(tmp_path), FASTMLP_CACHE="1")
    proc = subprocess.run([sys.executable, "-m", "fastmlp", "info"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(row for row in proc.stdout.splitlines() if row.startswith("cached kernels"))
    assert "train_epochs: none (first use compiles)" in line, line
    assert "forward_rows: none (first use compiles)" in line, line


FIRST_FIT = """
import sys
import numpy as np
import fastmlp
from fastmlp import _kernels as K, _kernels_tiny as KT
rng = np.random.RandomState(0)
sizes = [3, 4, 1] if sys.argv[1] == "tiny" else [3, 40, 1]  # 12 weights a layer: tiny; 120: not
fastmlp.MLP(sizes, seed=1).fit(rng.randn(3, 40), (rng.rand(1, 40) < 0.5).astype(float), epochs=1,
                               learning_rate=0.05, batch_size=8)
if sys.argv[1] == "tiny":
    kernel = KT.train_epochs_tiny_kernel(K.OPTIMIZER_CODES["sgd"], K.LOSS_CODES["bce"], 8)  # batches of 8
else:  # the general kernel specialised to relu and sigmoid
    kernel = K.train_epochs_kernel(K.OPTIMIZER_CODES["sgd"], K.LOSS_CODES["bce"], [K.ACT_RELU, K.ACT_SIGMOID])
stats = kernel.stats
print("hits", sum(stats.cache_hits.values()), "misses", sum(stats.cache_misses.values()))
"""


@pytest.mark.parametrize("kernel", ["general", "tiny"])
def test_a_fit_leaves_the_kernel_in_the_cache_and_info_says_so(kernel):
    """In the package's compile cache (shared with the other child processes): after one process has fitted
    (plain SGD, binary cross-entropy, float64; relu and sigmoid), ``info`` lists that kernel as cached, and the
    next process's fit loads it (a cache hit, no miss) instead of compiling it -- the general training kernel,
    and the tiny networks' one."""
    first = subprocess.run([sys.executable, "-c", FIRST_FIT, kernel], capture_output=True, text=True, env=ENV,
                           timeout=300)
    assert first.returncode == 0, first.stderr
    info = subprocess.run([sys.executable, "-m", "fastmlp", "info"], capture_output=True, text=True, env=ENV,
                          timeout=120)
    assert info.returncode == 0, info.stderr
    line = next(row for row in info.stdout.splitlines() if row.startswith("cached kernels"))
    section = line.split("tiny networks:")[1 if kernel == "tiny" else 0].split("forward_rows")[0]
    sgd_bce = next(part for part in section.split(";") if ("sgd/bce" if kernel == "tiny" else
                                                           "sgd/bce (relu+sigmoid)") in part)
    assert "float64" in sgd_bce, line
    second = subprocess.run([sys.executable, "-c", FIRST_FIT, kernel], capture_output=True, text=True, env=ENV,
                            timeout=300)
    assert second.returncode == 0, second.stderr
    assert "hits 1 misses 0" in second.stdout, second.stdout


def test_bench_quick(tmp_path):
    proc = run("bench", "--quick", "--only", "W1,W3", "--plot", tmp_path / "bench.png")
    assert proc.returncode == 0, proc.stderr
    assert "W1-xor" in proc.stdout and "W3-cancer" in proc.stdout
    assert (tmp_path / "bench.png").read_bytes().startswith(b"\x89PNG")


def test_bench_readme_quick():
    proc = run("bench", "--quick", "--readme", "--only", "W1")
    assert proc.returncode == 0, proc.stderr
    assert "| workload | dtype | NumPy (course code) | fastmlp | speedup |" in proc.stdout
    assert "| W1-xor | float64 |" in proc.stdout and "| W1-xor | float32 |" in proc.stdout
    assert "at commit" in proc.stdout


def test_demo_quick():
    t0 = time.perf_counter()
    proc = run("demo", "--quick")
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "1. XOR, 2-2-1 sigmoid" in out and "learned XOR: yes (4/4 correct)" in out
    assert "2. Two moons" in out and "3. Breast cancer" in out
    assert out.count("accuracy: train") == 2
    assert out.count("speedup over the NumPy reference:") == 3
    assert "Traceback" not in proc.stderr
    assert elapsed < 60


def test_ctrl_c_during_train_saves_nothing(data, trained, tmp_path):  # (trained: kernels compiled and cached)
    out = tmp_path / "model.npz"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastmlp", "train", str(data / "train.csv"), "--target", "label", "--out", str(out),
         "--epochs", "100000000", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        assert proc.stdout.readline().startswith("training ")  # printed right before fit starts
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        t0 = time.perf_counter()
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert time.perf_counter() - t0 < 20  # prompt (the running chunk of epochs finishes first)
    assert proc.returncode == 130, err
    assert "interrupted after" in err and "nothing saved" in err and "Traceback" not in err
    assert not out.exists()


# ------------------------------------------------------------------------------------------- bad input


@pytest.fixture()
def existing(tmp_path):
    """An output file that must survive every failed command untouched."""
    path = tmp_path / "existing.out"
    path.write_text("precious\n")
    return path


def _bad_files(tmp_path):
    (tmp_path / "cell.csv").write_text("a,b,y\n1,2,0\n3,4,1\n5,oops,0\n")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    (tmp_path / "wide.csv").write_text("alpha,beta,gamma,delta,label\n1,2,3,4,pos\n")
    np.save(tmp_path / "narrow.npy", np.ones((4, 2)))
    (tmp_path / "other.csv").write_text("alpha,b,c,label\n1,2,3,pos\n")


INPUTS = ["cell.csv", "corrupt.npz", "existing.out", "narrow.npy", "other.csv", "wide.csv"]

BAD_TRAIN = [
    (["missing.csv", "--target", "y"], ["missing.csv", "does not exist"]),
    (["cell.csv", "--target", "y"], ["line 4, column 'b'", "'oops'"]),
    (["cell.csv", "--target", "label"], ["target column 'label' not found"]),
    (["cell.csv", "--target", "y", "--hidden", "64,x"], ["--hidden", "64,x"]),
    (["cell.csv", "--target", "y", "--epochs", "0"], ["--epochs", "positive integer"]),
    (["cell.csv", "--target", "y", "--lr", "-0.1"], ["--lr", "positive"]),
    (["cell.csv", "--target", "y", "--batch-size", "-3"], ["--batch-size", "positive integer"]),
]


@pytest.mark.parametrize("args, fragments", BAD_TRAIN, ids=[" ".join(a) for a, _ in BAD_TRAIN])
def test_train_bad_input(tmp_path, existing, args, fragments):
    _bad_files(tmp_path)
    proc = run("train", *args, "--out", existing, cwd=tmp_path)
    assert_usage_error(proc, *fragments)
    assert existing.read_text() == "precious\n"
    assert sorted(os.listdir(tmp_path)) == INPUTS


def test_predict_bad_input(tmp_path, existing, data, trained):
    _bad_files(tmp_path)
    model = str(data / "model.npz")
    cases = [
        (["corrupt.npz", "wide.csv"], ["corrupt.npz", "corrupt or truncated"]),
        (["cell.csv", "wide.csv"], ["not a fastmlp model file"]),
        (["nomodel.npz", "wide.csv"], ["does not exist"]),
        ([model, "other.csv"], ["lacks column(s) 'beta', 'gamma'"]),
        ([model, "narrow.npy"], ["2 feature column(s), the model expects 3"]),
    ]
    for args, fragments in cases:
        proc = run("predict", *args, "--out", existing, cwd=tmp_path)
        assert_usage_error(proc, *fragments)
        assert existing.read_text() == "precious\n"
    assert sorted(os.listdir(tmp_path)) == INPUTS


# ------------------------------------------------------------------------------- rules, in process


def test_usage_errors_in_process(capsys, tmp_path):
    assert cli.main([]) == 2
    assert capsys.readouterr().err.startswith("error: choose a command")
    assert cli.main(["train", "x.csv"]) == 2
    assert "required: --target, --out" in capsys.readouterr().err
    assert cli.main(["train", "x.csv", "--target", "y", "--out", str(tmp_path / "no" / "m.npz")]) == 2
    assert "folder" in capsys.readouterr().err
    assert cli.main(["train", "x.csv", "--target", "y", "--out", "m.npz", "--val-fraction", "1"]) == 2
    assert "--val-fraction" in capsys.readouterr().err
    assert cli.main(["train", "x.csv", "--target", "y", "--out", "m.npz", "--activation", "swish"]) == 2
    assert "invalid choice: 'swish'" in capsys.readouterr().err
    (tmp_path / "d.csv").write_text("a,y\n1,0\n")
    assert cli.main(["train", str(tmp_path / "d.csv"), "--target", "y", "--out", str(tmp_path / "d.csv")]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    # an empty file name is refused before any work (bench --plot '' ran every benchmark, then failed)
    assert cli.main(["bench", "--plot", ""]) == 2
    assert "plot needs a file name" in capsys.readouterr().err
    assert cli.main(["train", "x.csv", "--target", "y", "--out", " "]) == 2
    assert "output needs a file name" in capsys.readouterr().err
    assert cli.main(["--version"]) == 0


def test_parse_hidden():
    assert cli.parse_hidden("64,32") == [64, 32]
    assert cli.parse_hidden(" 8 ") == [8]
    assert cli.parse_hidden("none") == [] and cli.parse_hidden("") == []
    for bad in ("64,,32", "0", "-4", "1.5", "a"):
        with pytest.raises(Exception, match="comma-separated"):
            cli.parse_hidden(bad)


@pytest.mark.parametrize(
    "y, loss, expected",
    [
        (np.array(["a", "b", "a"]), None, "bce"),
        (np.array([0.0, 1.0, 1.0]), None, "bce"),
        (np.array([3.0, 7.0, 7.0]), None, "bce"),
        (np.array(["a", "b", "c"]), None, "ce"),
        (np.array([0.0, 1.0, 2.0, 5.0]), None, "ce"),
        (np.arange(21.0), None, "mse"),
        (np.array([0.5, 1.5, 2.5]), None, "mse"),
        (np.array([0.0, 1.0, 2.0]), "mse", "mse"),
        (np.array([0.0, 1.0]), "ce", "ce"),
    ],
)
def test_loss_rule(y, loss, expected):
    assert _tabular.choose_task(y, loss, "t")[0] == expected


def test_loss_rule_errors():
    with pytest.raises(ValueError, match="exactly 2 classes"):
        _tabular.choose_task(np.array([0.0, 1.0, 2.0]), "bce", "t")
    with pytest.raises(ValueError, match="numeric target"):
        _tabular.choose_task(np.array(["a", "b", "c"]), "mse", "t")
    with pytest.raises(ValueError, match="single value"):
        _tabular.choose_task(np.array([1.0, 1.0]), None, "t")


def test_train_regression_and_multiclass_in_process(tmp_path, capsys):
    rng = np.random.RandomState(0)
    X = rng.randn(120, 2)
    y_reg = 100 + 30 * X[:, 0] - 20 * X[:, 1]
    np.savez(tmp_path / "reg.npz", X=X, y=y_reg)
    assert cli.main(["train", str(tmp_path / "reg.npz"), "--target", "y", "--out", str(tmp_path / "r.npz"),
                     "--epochs", "150", "--quiet", "--hidden", "16"]) == 0
    out = capsys.readouterr().out
    assert "loss mse" in out and float(out.split("validation R² ")[1].split()[0]) > 0.95
    assert cli.main(["predict", str(tmp_path / "r.npz"), str(tmp_path / "reg.npz"), "--out",
                     str(tmp_path / "r.csv")]) == 0
    pred = np.loadtxt(tmp_path / "r.csv", skiprows=1)
    assert np.corrcoef(pred, y_reg)[0, 1] > 0.97  # predictions on the target's own scale
    assert abs(pred.mean() - y_reg.mean()) < 5

    y_cls = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int) * 2  # 4 integer classes
    np.save(tmp_path / "cls.npy", np.column_stack([X, y_cls]))
    assert cli.main(["train", str(tmp_path / "cls.npy"), "--target", "-1", "--out", str(tmp_path / "c.npz"),
                     "--epochs", "60", "--quiet", "--dtype", "float32", "--val-fraction", "0"]) == 0
    out = capsys.readouterr().out
    assert "2-64-32-4 relu net, loss ce" in out and "validation" not in out.split("final cost")[1]
    assert cli.main(["predict", str(tmp_path / "c.npz"), str(tmp_path / "cls.npy"), "--out",
                     str(tmp_path / "c.csv")]) == 0
    out = capsys.readouterr().out
    assert float(out.split("accuracy ")[1].split()[0]) > 0.85
    header = (tmp_path / "c.csv").read_text().splitlines()[0]
    assert header == "prediction,proba_0,proba_1,proba_2,proba_3"
    # the same data without its label column predicts positionally
    np.save(tmp_path / "cls_x.npy", X)
    assert cli.main(["predict", str(tmp_path / "c.npz"), str(tmp_path / "cls_x.npy"), "--out",
                     str(tmp_path / "c2.csv")]) == 0
    assert (tmp_path / "c2.csv").read_text() == (tmp_path / "c.csv").read_text()


def test_demo_data_without_sklearn(monkeypatch):
    from fastmlp import _demo

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # `from sklearn.datasets import ...` fails
    X, y, source = _demo.load_cancer()
    assert X.shape == (569, 30) and set(np.unique(y)) == {0.0, 1.0} and "generated" in source
    X, y = _demo.make_moons(50, seed=1)
    assert X.shape == (2, 50) and y.sum() == 25


# ------------------------------------------------------------------------------ issue 9, §5: the command line


def test_resource_error_is_one_line_exit_2(tmp_path):
    """A network too big for memory: exit 2 and one line (a child with a 3 GiB address-space cap, so the
    result does not depend on the machine's memory)."""
    rng = np.random.RandomState(0)
    lines = ["a,b,c,y"] + [f"{a},{b},{c},{int(a > 0)}" for a, b, c in rng.randn(20, 3).tolist()]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
            "from fastmlp.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "train", str(tmp_path / "d.csv"), "--target", "y", "--out",
                           str(tmp_path / "m.npz"), "--hidden", "400000000", "--quiet"],
                          capture_output=True, text=True, env=ENV, timeout=240)
    assert_usage_error(proc, "out of memory")
    assert not (tmp_path / "m.npz").exists()


def test_predict_quotes_csv_cells(tmp_path):
    import csv

    rng = np.random.RandomState(1)
    X = rng.randn(60, 2)
    labels = np.where(X[:, 0] > 0, '"x, y"', "z")  # a label with a comma (quoted in the input CSV)
    lines = ["f1,f2,label"] + [f"{a!r},{b!r},{t}" for (a, b), t in zip(X.tolist(), labels)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    assert cli.main(["train", str(tmp_path / "d.csv"), "--target", "label", "--out", str(tmp_path / "m.npz"),
                     "--hidden", "4", "--epochs", "5", "--quiet"]) == 0
    assert cli.main(["predict", str(tmp_path / "m.npz"), str(tmp_path / "d.csv"), "--out",
                     str(tmp_path / "p.csv")]) == 0
    with open(tmp_path / "p.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["prediction", "proba_x, y", "proba_z"]
    assert all(len(r) == 3 for r in rows) and len(rows) == 61
    assert {r[0] for r in rows[1:]} <= {"x, y", "z"}


def test_predict_refuses_preprocessing_that_does_not_fit_the_network(data, trained, tmp_path):
    """A model file edited on purpose (checksum recomputed): refused with one line, no output written."""
    from fastmlp import _modelfile, io

    with np.load(data / "model.npz", allow_pickle=False) as z:
        entries = {k: z[k] for k in z.files}
    for key, value, message in (("pre__feature_names", np.array(["alpha", "beta"]), "must hold 3 entries"),
                                ("pre__classes", np.array(["neg", "pos", "odd"]), "needs 1 sigmoid"),
                                ("pre__std", np.array([1.0, 0.0, 1.0]), "must be positive")):
        edited = {**entries, key: value}
        edited["checksum"] = np.array(_modelfile.checksum(edited))
        bad = tmp_path / f"{key}.npz"
        with open(bad, "wb") as fh:
            np.savez(fh, **edited)
        io.load_model(bad)  # the network itself is fine ...
        proc = run("predict", bad, data / "train.csv", "--out", tmp_path / "p.csv")
        assert_usage_error(proc, message)  # ... but it cannot predict with this preprocessing
        assert not (tmp_path / "p.csv").exists()
