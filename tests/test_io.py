"""Model files (atomic saves, validated loads) and data files (fastmlp.io)."""

from __future__ import annotations

import io as _pyio
import os
import zipfile

import numpy as np
import pytest

from fastmlp import MLP, _modelfile, io


@pytest.fixture(scope="module")
def trained():
    rng = np.random.RandomState(0)
    X = rng.randn(3, 40)
    Y = (X[0] > 0).astype(float)
    model = MLP([3, 5, 4, 1], hidden_activation="tanh", seed=0).fit(X, Y, epochs=3, learning_rate=0.1)
    return model, X


def _entries(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _rewrite(path, entries, *, fix_checksum=True):
    """Write ``entries`` back, as a tamperer would, optionally with a matching checksum."""
    entries = dict(entries)
    if fix_checksum:
        entries["checksum"] = np.array(_modelfile.checksum(entries))
    with open(path, "wb") as fh:
        np.savez(fh, **entries)


# --------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_round_trip_mlp(tmp_path, dtype):
    rng = np.random.RandomState(1)
    X = rng.randn(4, 30)
    Y = np.eye(3)[:, rng.randint(0, 3, 30)]
    model = MLP([4, 6, 3], hidden_activation="leaky_relu", output_activation="softmax", loss="ce",
                dtype=dtype, leaky_slope=0.2, seed=1)
    model.fit(X, Y, epochs=4, learning_rate=0.1, batch_size=7)
    path = tmp_path / "model.npz"
    io.save_model(model, path)
    loaded = io.load_model(path)
    assert type(loaded) is MLP
    assert loaded.layer_dims == [4, 6, 3]
    assert loaded.activations == ["leaky_relu", "softmax"]
    assert loaded.loss == "ce"
    assert loaded.dtype == np.dtype(dtype)
    assert loaded.leaky_slope == 0.2
    assert loaded.history == model.history
    for key, value in model.get_parameters().items():
        got = loaded.get_parameters()[key]
        assert got.dtype == value.dtype
        np.testing.assert_array_equal(got, value)
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X))
    # the loaded model trains on, like the original
    loaded.fit(X, Y, epochs=1, learning_rate=0.1)
    assert len(loaded.history) == 5


def test_mlp_save_load_methods(tmp_path, trained):
    model, X = trained
    model.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(MLP.load(tmp_path / "m.npz").forward(X), model.forward(X))


def test_preprocessing_round_trip(tmp_path, trained):
    model, _ = trained
    pre = {"mean": np.arange(3.0), "std": np.ones(3), "feature_names": ["a", "b", "c"], "target_name": "y",
           "classes": np.array(["no", "yes"]), "n_seen": 40, "scale": 2.5}
    io.save_model(model, tmp_path / "m.npz", preprocessing=pre)
    loaded, got = io.load_model(tmp_path / "m.npz", return_preprocessing=True)
    assert set(got) == set(pre)
    np.testing.assert_array_equal(got["mean"], pre["mean"])
    assert got["feature_names"].tolist() == ["a", "b", "c"]
    assert got["classes"].tolist() == ["no", "yes"]
    assert got["target_name"] == "y" and got["n_seen"] == 40 and got["scale"] == 2.5
    info = io.read_model_info(tmp_path / "m.npz")
    assert info["kind"] == "MLP" and info["layer_dims"] == [3, 5, 4, 1] and info["n_features_in"] == 3
    _, none = io.load_model(_save_plain(tmp_path, model), return_preprocessing=True)
    assert none == {}


def _save_plain(tmp_path, model):
    path = tmp_path / "plain.npz"
    io.save_model(model, path)
    return path


def test_preprocessing_rejects_objects(tmp_path, trained):
    model, _ = trained
    with pytest.raises(ValueError, match="pickled"):
        io.save_model(model, tmp_path / "m.npz", preprocessing={"bad": [object()]})
    with pytest.raises(ValueError, match="identifiers"):
        io.save_model(model, tmp_path / "m.npz", preprocessing={"not a name": 1})
    assert not (tmp_path / "m.npz").exists()


def test_path_used_as_given(tmp_path, trained):
    model, _ = trained
    io.save_model(model, tmp_path / "model.bin")
    assert os.listdir(tmp_path) == ["model.bin"]
    assert isinstance(io.load_model(tmp_path / "model.bin"), MLP)


def test_estimators_round_trip(tmp_path):
    pytest.importorskip("sklearn")
    import warnings

    from fastmlp import MLPClassifier, MLPRegressor

    rng = np.random.RandomState(0)
    X = rng.randn(60, 4)
    labels = np.array(["cat", "dog", "eel"])[rng.randint(0, 3, 60)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(7,), max_iter=5, random_state=0).fit(X, labels)
        reg = MLPRegressor(hidden_layer_sizes=(5, 3), max_iter=5, random_state=0).fit(X, X[:, 0])
    for est in (clf, reg):
        path = tmp_path / f"{type(est).__name__}.npz"
        io.save_model(est, path)
        loaded = io.load_model(path, kind=type(est).__name__)
        assert type(loaded) is type(est)
        assert loaded.get_params() == est.get_params()
        assert loaded.loss_curve_ == est.loss_curve_
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    np.testing.assert_allclose(io.load_model(tmp_path / "MLPClassifier.npz").predict_proba(X), clf.predict_proba(X))
    with pytest.raises(ValueError, match="not a MLP"):
        io.load_model(tmp_path / "MLPClassifier.npz", kind="MLP")


# ------------------------------------------------------------------------------------- atomic saves


def test_failed_save_keeps_the_old_file(tmp_path, trained, monkeypatch):
    model, _ = trained
    path = tmp_path / "m.npz"
    io.save_model(model, path)
    before = path.read_bytes()

    calls = {"n": 0}
    real = np.lib.format.write_array

    def failing(fp, array, *args, **kwargs):  # serialise two arrays, then fail half way
        calls["n"] += 1
        if calls["n"] > 2:
            fp.write(b"\0" * 10)
            raise OSError("No space left on device")
        return real(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", failing)
    with pytest.raises(OSError, match="No space"):
        io.save_model(model, path)
    with pytest.raises(OSError, match="No space"):
        io.save_model(model, tmp_path / "new.npz")
    assert calls["n"] > 2
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]  # no temporary file, no half-written new file
    assert isinstance(io.load_model(path), MLP)


def test_interrupted_save_leaves_nothing(tmp_path, trained):
    model, _ = trained

    def interrupted(fh):
        fh.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        io.atomic_write(tmp_path / "x.npz", interrupted)
    assert os.listdir(tmp_path) == []


def test_save_into_missing_folder(tmp_path, trained):
    model, _ = trained
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.save_model(model, tmp_path / "nope" / "m.npz")


def test_save_rejects_non_models(tmp_path):
    with pytest.raises(TypeError, match="cannot save"):
        io.save_model({"W1": np.ones((1, 1))}, tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------------- rejected files


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.load_model(tmp_path / "nope.npz")


def test_not_an_archive(tmp_path):
    (tmp_path / "a.npz").write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="not a fastmlp model file"):
        io.load_model(tmp_path / "a.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        io.load_model(tmp_path / "empty.npz")
    np.save(tmp_path / "arr.npy", np.ones(3))
    with pytest.raises(ValueError, match="not a fastmlp model file"):
        io.load_model(tmp_path / "arr.npy")
    np.savez(tmp_path / "other.npz", X=np.ones((2, 2)))
    with pytest.raises(ValueError, match="missing entr"):
        io.load_model(tmp_path / "other.npz")


@pytest.mark.parametrize("keep", [0.3, 0.9, 0.999])
def test_truncated(tmp_path, trained, keep):
    model, _ = trained
    path = tmp_path / "m.npz"
    io.save_model(model, path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        io.load_model(path)


def test_flipped_byte(tmp_path, trained):
    model, _ = trained
    path = tmp_path / "m.npz"
    io.save_model(model, path)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("W2.npy")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + info.file_size - 3] ^= 0x40  # inside W2's values
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt|checksum"):
        io.load_model(path)


def test_edited_without_checksum(tmp_path, trained):
    model, _ = trained
    path = tmp_path / "m.npz"
    io.save_model(model, path)
    entries = _entries(path)
    entries["W1"] = entries["W1"] * 2
    _rewrite(path, entries, fix_checksum=False)
    with pytest.raises(ValueError, match="checksum mismatch"):
        io.load_model(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda e: e.__setitem__("W2", np.full_like(e["W2"], np.nan)), "W2 contains NaN"),
        (lambda e: e.__setitem__("W2", e["W2"][:, :-1]), "W2 has shape"),
        (lambda e: e.__setitem__("b1", e["b1"].astype(np.float32)), "b1 has dtype float32"),
        (lambda e: e.pop("b3"), "missing entry 'b3'"),
        (lambda e: e.__setitem__("extra", np.ones(2)), "unexpected entry 'extra'"),
        (lambda e: e.__setitem__("layer_dims", np.array([3, 5, 4, 0])), "layer_dims must be positive"),
        (lambda e: e.__setitem__("layer_dims", np.array([3, 5, 1])), "activations must be 2 names"),
        (lambda e: e.__setitem__("activations", np.array(["tanh", "swish", "sigmoid"])), "unknown activation"),
        (lambda e: e.__setitem__("activations", np.array(["tanh", "tanh", "linear"])), "needs a sigmoid output"),
        (lambda e: e.__setitem__("loss", np.array("hinge")), "unknown loss"),
        (lambda e: e.__setitem__("dtype", np.array("float16")), "dtype is 'float16'"),
        (lambda e: e.__setitem__("kind", np.array("Booster")), "unknown model kind"),
        (lambda e: e.__setitem__("format", np.array("something")), "format marker"),
        (lambda e: e.__setitem__("format_version", np.array(99)), "newer fastmlp"),
        (lambda e: e.__setitem__("history", np.array([0.5, np.inf])), "history contains NaN"),
        (lambda e: e.__setitem__("leaky_slope", np.array(np.nan)), "leaky_slope"),
        (lambda e: e.__setitem__("pre__mean", np.array([np.nan])), "contains NaN"),
    ],
)
def test_tampered_with_valid_checksum(tmp_path, trained, edit, message):
    model, _ = trained
    path = tmp_path / "m.npz"
    io.save_model(model, path)
    entries = _entries(path)
    edit(entries)
    _rewrite(path, entries)
    with pytest.raises(ValueError, match=message):
        io.load_model(path)
    with pytest.raises(ValueError, match=message):
        io.read_model_info(path)


def test_pickled_content_is_never_loaded(tmp_path, trained):
    model, _ = trained
    path = tmp_path / "m.npz"
    io.save_model(model, path)
    entries = _entries(path)
    entries["pre__evil"] = np.array([{"a": 1}], dtype=object)
    with open(path, "wb") as fh:
        np.savez(fh, **entries)  # (np.savez pickles object arrays)
    with pytest.raises(ValueError, match="corrupt|pickle|Object arrays"):
        io.load_model(path)


# ------------------------------------------------------------------------------------------ data files


def _csv(tmp_path, text, name="d.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_csv(tmp_path):
    path = _csv(tmp_path, "a, b ,label\n1,2.5,yes\n\n-3,4e1,no\n")
    X, y, names = io.read_table(path, target="label")
    np.testing.assert_array_equal(X, [[1, 2.5], [-3, 40]])
    assert X.dtype == np.float64 and names == ["a", "b"]
    assert y.tolist() == ["yes", "no"]
    with pytest.raises(ValueError, match="line 2, column 'label': non-numeric value 'yes'"):
        io.read_table(path, target="a")  # text is allowed in the target column only


def test_read_csv_numeric_target_and_no_target(tmp_path):
    path = _csv(tmp_path, "x1,x2,y\n1,2,0\n3,4,1\n")
    X, y, names = io.read_table(path, target="y")
    assert y.dtype == np.float64 and y.tolist() == [0, 1] and names == ["x1", "x2"]
    X, y, names = io.read_table(path)
    assert y is None and X.shape == (2, 3)
    X, y, names, t = io.read_table(path, target="zz", optional_target=True, return_target_name=True)
    assert y is None and t is None and X.shape == (2, 3)


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b,y\n1,2,0\n3,x,1\n", r"line 3, column 'b': non-numeric value 'x'"),
        ("a,b,y\n1,2,0\n\n3,,1\n", r"line 4, column 'b': empty cell"),
        ("a,b,y\n1,2,0\n3,nan,1\n", r"line 3, column 'b': non-finite value 'nan'"),
        ("a,b,y\n1,2,0\n3,4\n", r"line 3: 2 cells, but the header has 3 columns"),
        ("a,a,y\n1,2,0\n", r"column name 'a' appears twice"),
        ("a,,y\n1,2,0\n", r"empty column name"),
        ("a,b,y\n", r"no data rows"),
        ("", r"is empty"),
        ("a,b,y\n1,2,0\n3,4,cat\n", r"mixes numbers and text \(line 3: 'cat'\)"),
        ("a,b,y\n1,2,0\n3,4,\n", r"line 3, column 'y': empty cell"),
        ("a,b,q\n1,2,0\n", r"target column 'y' not found .*columns: a, b, q"),
    ],
)
def test_read_csv_errors(tmp_path, text, message):
    path = _csv(tmp_path, text)
    with pytest.raises(ValueError, match=message):
        io.read_table(path, target="y")


def test_read_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.read_table(tmp_path / "nope.csv", target="y")


def test_read_npz_and_npy(tmp_path):
    X = np.arange(12.0).reshape(4, 3)
    np.savez(tmp_path / "d.npz", X=X, y=np.array([0, 1, 0, 1]), feature_names=np.array(["p", "q", "r"]))
    got, y, names = io.read_table(tmp_path / "d.npz", target="y")
    np.testing.assert_array_equal(got, X)
    assert y.tolist() == [0, 1, 0, 1] and names == ["p", "q", "r"]
    with pytest.raises(ValueError, match="target 'label' not found"):
        io.read_table(tmp_path / "d.npz", target="label")
    np.savez(tmp_path / "noX.npz", A=X)
    with pytest.raises(ValueError, match="no array 'X'"):
        io.read_table(tmp_path / "noX.npz", target="y")

    np.save(tmp_path / "d.npy", X)
    got, y, names = io.read_table(tmp_path / "d.npy", target="-1")
    np.testing.assert_array_equal(got, X[:, :2])
    np.testing.assert_array_equal(y, X[:, 2])
    assert names == ["col0", "col1"]
    got, y, names = io.read_table(tmp_path / "d.npy", target="col0")
    assert names == ["col1", "col2"]
    bad = X.copy()
    bad[2, 1] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match="row 2, column 1 is not finite"):
        io.read_table(tmp_path / "bad.npy", target="0")
    np.save(tmp_path / "obj.npy", np.array([[1, "a"]], dtype=object))
    with pytest.raises(ValueError, match="not a readable .npy"):
        io.read_table(tmp_path / "obj.npy", target="0")


def test_standardizer():
    X = np.array([[1.0, 5.0, 0.0], [3.0, 5.0, 1.0], [5.0, 5.0, 2.0]])
    mean, std = io.fit_standardizer(X)
    np.testing.assert_allclose(mean, [3, 5, 1])
    np.testing.assert_allclose(std, [np.sqrt(8 / 3), 1.0, np.sqrt(2 / 3)])  # constant column: std 1
    Z = io.standardize(X, mean, std)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-15)
    np.testing.assert_array_equal(Z[:, 1], 0)
    with pytest.raises(ValueError, match="columns"):
        io.standardize(X[:, :2], mean, std)


# ------------------------------------------------------------------ files that cannot hurt (issue 9, §4)


def test_folder_as_model_path_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="is a folder, not a fastmlp model file"):
        io.load_model(tmp_path)
    with pytest.raises(ValueError, match="is a folder"):
        MLP.load(tmp_path)


def _bomb(path, inflated_mib):
    """A valid-looking model archive whose one big member inflates to ``inflated_mib`` MiB of zeros."""
    arr_header = {"descr": "<f8", "fortran_order": False, "shape": (inflated_mib << 17,)}
    buf = _pyio.BytesIO()
    np.lib.format.write_array_header_1_0(buf, arr_header)
    header = buf.getvalue()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("format.npy", _npy(np.array("fastmlp-model")))
        with zf.open("W1.npy", "w", force_zip64=True) as fh:
            fh.write(header)
            zeros = bytes(1 << 20)
            for _ in range(inflated_mib):
                fh.write(zeros)


def _npy(arr):
    buf = _pyio.BytesIO()
    np.lib.format.write_array(buf, arr)
    return buf.getvalue()


def test_zip_bomb_is_refused_unread(tmp_path):
    import tracemalloc

    path = tmp_path / "bomb.npz"
    _bomb(path, 64)
    assert path.stat().st_size < 1 << 20  # well under a megabyte on disk, 64 MiB inflated
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="refused unread"):
            io.load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak  # nothing was inflated


def test_member_header_declaring_more_than_it_holds(tmp_path, trained):
    model, _ = trained
    path = tmp_path / "m.npz"
    io.save_model(model, path)
    entries = _entries(path)
    with zipfile.ZipFile(path, "w") as zf:  # W1.npy claims a billion values in a header over a few bytes
        for key, value in entries.items():
            data = _npy(value)
            if key == "W1":
                buf = _pyio.BytesIO()
                np.lib.format.write_array_header_1_0(
                    buf, {"descr": "<f8", "fortran_order": False, "shape": (10**9,)})
                data = buf.getvalue() + data[-64:]
            zf.writestr(f"{key}.npy", data)
    with pytest.raises(ValueError, match="'W1' declares shape"):
        io.load_model(path)


@pytest.mark.parametrize(
    "name, message",
    [("../escape.npy", "unexpected member"), ("W1.txt", "unexpected member"), ("a/b.npy", "unexpected member")],
)
def test_member_names_are_checked_first(tmp_path, trained, name, message):
    model, _ = trained
    path = tmp_path / "m.npz"
    io.save_model(model, path)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(name, b"x")
    with pytest.raises(ValueError, match=message):
        io.load_model(path)


def test_too_many_members(tmp_path):
    from fastmlp import _modelfile

    path = tmp_path / "many.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(_modelfile.MAX_MEMBERS + 1):
            zf.writestr(f"m{i}.npy", b"")
    with pytest.raises(ValueError, match="members; a model file has at most"):
        io.load_model(path)


@pytest.fixture(scope="module")
def fitted_estimators():
    pytest.importorskip("sklearn")
    import warnings

    from fastmlp import MLPClassifier, MLPRegressor

    rng = np.random.RandomState(0)
    X = rng.randn(60, 4)
    y4 = rng.randint(0, 4, 60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, y4)
        reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, X[:, 0])
    return clf, reg, X


def _state(entries, **changes):
    import json

    state = json.loads(str(entries["state_json"]))
    state.update(changes)
    entries["state_json"] = np.array(json.dumps(state))


@pytest.mark.parametrize(
    "which, edit, message",
    [
        ("clf", lambda e: e.pop("classes_"), "needs its classes_"),
        ("clf", lambda e: e.__setitem__("classes_", np.array([0, 1])), "2 classes need 1 output"),
        ("clf", lambda e: e.__setitem__("classes_", np.array([0, 1, 2, 2])), "holds a label twice"),
        ("clf", lambda e: _state(e, out_activation_="logistic"), "out_activation_ is 'logistic'"),
        ("clf", lambda e: _state(e, feature_names_in_=["a", "b"]), "feature_names_in_ must be 4 names"),
        ("clf", lambda e: _state(e, n_features_in_=7), "n_features_in_ is 7"),
        ("clf", lambda e: _state(e, n_outputs_=2), "n_outputs_ is 2"),
        ("reg", lambda e: e.__setitem__("classes_", np.array([0, 1])), "has no classes_"),
        ("reg", lambda e: _state(e, out_activation_="softmax"), "needs 'identity'"),
        ("reg", lambda e: e.__setitem__("params_json", np.array('{"activation": "swish"}')), "do not fit"),
        ("reg", lambda e: e.__setitem__("params_json", np.array('{"hidden_layer_sizes": [9]}')),
         "do not match the weights"),
    ],
)
def test_estimator_file_must_describe_one_network(tmp_path, fitted_estimators, which, edit, message):
    """Files whose checksum was recomputed after an edit load only when consistent, so predict cannot fail."""
    clf, reg, X = fitted_estimators
    est = clf if which == "clf" else reg
    path = tmp_path / "m.npz"
    io.save_model(est, path)
    entries = _entries(path)
    edit(entries)
    _rewrite(path, entries)
    with pytest.raises(ValueError, match=message):
        io.load_model(path)


def test_consistent_estimator_files_still_load_and_predict(tmp_path, fitted_estimators):
    clf, reg, X = fitted_estimators
    for est in (clf, reg):
        path = tmp_path / "m.npz"
        io.save_model(est, path)
        _rewrite(path, _entries(path))  # re-written as a tamperer would, unchanged
        np.testing.assert_array_equal(io.load_model(path).predict(X), est.predict(X))
