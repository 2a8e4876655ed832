"""Data tables: the files the command line trains and predicts on, read into arrays (samples as rows).

:func:`read_table` reads

- ``.csv`` (``.tsv``): a header row of column names, then one sample per line, comma (tab) separated.
  Feature cells must be numbers; the target column may hold numbers or text labels.
- ``.npz``: an array ``X`` of shape ``(m, n)``, optionally ``feature_names`` (``n`` strings), and the target
  as a 1-D array of length ``m`` stored under the target's name (e.g. ``y``).
- ``.npy``: one 2-D array ``(m, n)``; columns are named ``col0, col1, ...`` and the target is chosen by
  that name or by its index (``"-1"`` for the last column).

Every bad cell is reported by line and column as a ``ValueError``; nothing is ever unpickled.
"""

from __future__ import annotations

import csv
import os
import warnings

import numpy as np

__all__ = ["read_table"]


def _parse_numeric_column(cells, name, first_line, *, allow_text=False):
    """Cells (strings) of one CSV column -> float64 array; or a text array when ``allow_text``."""
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        values = None
    if values is not None:
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"line {first_line + i}, column {name!r}: non-finite value {cells[i]!r}")
        return values
    # find the first cell that is not a number
    numeric = []
    for cell in cells:
        try:
            float(cell)
            numeric.append(True)
        except ValueError:
            numeric.append(False)
    i = numeric.index(False)
    if not cells[i].strip():
        raise ValueError(f"line {first_line + i}, column {name!r}: empty cell")
    if allow_text:
        if any(numeric):
            j = numeric.index(True) if not numeric[0] else i
            raise ValueError(
                f"target column {name!r} mixes numbers and text (line {first_line + j}: {cells[j]!r}); "
                "use all numbers or all text labels"
            )
        cells = [c.strip() for c in cells]
        empty = [k for k, c in enumerate(cells) if not c]
        if empty:
            raise ValueError(f"line {first_line + empty[0]}, column {name!r}: empty cell")
        return np.array(cells, dtype=np.str_)
    raise ValueError(f"line {first_line + i}, column {name!r}: non-numeric value {cells[i].strip()!r}")


def _read_csv_fast(path, delimiter, target, optional_target):
    """All-numeric CSV whose first line is the header: NumPy's C parser. None when that does not apply."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            first = fh.readline()
        header = [h.strip() for h in next(csv.reader([first], delimiter=delimiter))]
        if not header or any(not h for h in header) or len(set(header)) != len(header) or '"' in first:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data" and the like: the slow path explains
            A = np.loadtxt(path, delimiter=delimiter, skiprows=1, ndmin=2, dtype=np.float64, encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError, csv.Error, StopIteration):
        return None
    if A.shape[0] == 0 or A.shape[1] != len(header) or not np.all(np.isfinite(A)):
        return None
    t = _resolve_target(header, target, optional_target, path)
    keep = [j for j in range(len(header)) if j != t]
    if not keep:
        return None
    y = A[:, t].copy() if t is not None else None
    return np.ascontiguousarray(A[:, keep]), y, [header[j] for j in keep], (header[t] if t is not None else None)


def _read_csv(path, target, optional_target):
    delimiter = "\t" if str(path).lower().endswith(".tsv") else ","
    fast = _read_csv_fast(path, delimiter, target, optional_target)
    if fast is not None:
        return fast
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh, delimiter=delimiter))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not a UTF-8 text file ({exc.reason})") from None
    except csv.Error as exc:
        raise ValueError(f"{str(path)!r}: malformed CSV: {exc}") from None
    # keep line numbers (1-based, header is line 1); drop blank lines. Cells keep their spaces (the number
    # parser ignores them); text cells are stripped where they are used.
    numbered = [(i + 1, row) for i, row in enumerate(rows) if row and (len(row) > 1 or row[0].strip())]
    if not numbered:
        raise ValueError(f"{str(path)!r} is empty")
    header_line, header = numbered[0]
    header = [h.strip() for h in header]
    if any(not h for h in header):
        raise ValueError(f"line {header_line}: the header has an empty column name")
    seen = set()
    for h in header:
        if h in seen:
            raise ValueError(f"line {header_line}: column name {h!r} appears twice in the header")
        seen.add(h)
    body = numbered[1:]
    if not body:
        raise ValueError(f"{str(path)!r} has a header but no data rows")
    width = len(header)
    for line, row in body:
        if len(row) != width:
            raise ValueError(f"line {line}: {len(row)} cells, but the header has {width} columns")
    lines = [line for line, _ in body]
    contiguous = lines == list(range(lines[0], lines[0] + len(lines)))

    def column(j, name, allow_text=False):
        cells = [row[j] for _, row in body]
        if contiguous:
            return _parse_numeric_column(cells, name, lines[0], allow_text=allow_text)
        try:
            return _parse_numeric_column(cells, name, 0, allow_text=allow_text)
        except ValueError as exc:  # re-number: blank lines were skipped
            msg = str(exc)
            if msg.startswith("line "):
                idx, rest = msg[5:].split(",", 1)
                msg = f"line {lines[int(idx)]},{rest}"
            raise ValueError(msg) from None

    t = _resolve_target(header, target, optional_target, path)
    names = [h for j, h in enumerate(header) if j != t]
    if not names:
        raise ValueError(f"{str(path)!r} has no feature columns besides the target {header[t]!r}")
    cols = [column(j, h) for j, h in enumerate(header) if j != t]
    X = np.column_stack(cols)
    y = column(t, header[t], allow_text=True) if t is not None else None
    return X, y, names, (header[t] if t is not None else None)


def _resolve_target(columns, target, optional_target, path):
    if target is None:
        return None
    target = str(target)
    if target in columns:
        return columns.index(target)
    if optional_target:
        return None
    try:
        idx = int(target)
    except ValueError:
        idx = None
    if idx is not None and all(c == f"col{i}" for i, c in enumerate(columns)) and -len(columns) <= idx < len(columns):
        return idx % len(columns)
    shown = ", ".join(columns[:8]) + (", ..." if len(columns) > 8 else "")
    raise ValueError(f"target column {target!r} not found in {str(path)!r} (columns: {shown})")


def _check_array_data(X, name, path):
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{str(path)!r}: {name} must hold numbers, got dtype {X.dtype}")
    X = X.astype(np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{str(path)!r}: {name} row {r}, column {c} is not finite ({X[r, c]})")
    return X


def _read_npy(path, target, optional_target):
    try:
        A = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ValueError(f"{str(path)!r} is not a readable .npy file: {exc}") from None
    if not isinstance(A, np.ndarray) or A.ndim != 2:
        raise ValueError(f"{str(path)!r}: expected a 2-D array (samples as rows), got shape {np.shape(A)}")
    if A.shape[0] == 0 or A.shape[1] == 0:
        raise ValueError(f"{str(path)!r} is empty (shape {A.shape})")
    A = _check_array_data(A, "the array", path)
    columns = [f"col{i}" for i in range(A.shape[1])]
    t = _resolve_target(columns, target, optional_target, path)
    keep = [j for j in range(A.shape[1]) if j != t]
    if not keep:
        raise ValueError(f"{str(path)!r} has no feature columns besides the target")
    y = A[:, t].copy() if t is not None else None
    return np.ascontiguousarray(A[:, keep]), y, [columns[j] for j in keep], (columns[t] if t is not None else None)


def _read_data_npz(path, target, optional_target):
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as exc:
        raise ValueError(f"{str(path)!r} is not a readable .npz file: {exc}") from None
    if "X" not in data:
        raise ValueError(f"{str(path)!r} has no array 'X' (found: {', '.join(sorted(data)) or 'nothing'})")
    X = data["X"]
    if X.ndim != 2 or X.size == 0:
        raise ValueError(f"{str(path)!r}: X must be a non-empty 2-D array (samples as rows), got shape {X.shape}")
    X = _check_array_data(X, "X", path)
    if "feature_names" in data:
        names = [str(n) for n in np.asarray(data["feature_names"]).ravel()]
        if len(names) != X.shape[1]:
            raise ValueError(f"{str(path)!r}: {len(names)} feature_names for {X.shape[1]} columns of X")
    else:
        names = [f"col{i}" for i in range(X.shape[1])]
    y = None
    tname = None
    if target is not None:
        tname = str(target)
        if tname not in data or tname in ("X", "feature_names"):
            if not optional_target:
                others = sorted(k for k in data if k not in ("X", "feature_names"))
                raise ValueError(
                    f"target {tname!r} not found in {str(path)!r} (arrays besides X: {', '.join(others) or 'none'})"
                )
            tname = None
        else:
            y = np.asarray(data[tname])
            if y.ndim == 2 and 1 in y.shape:
                y = y.ravel()
            if y.ndim != 1 or y.shape[0] != X.shape[0]:
                raise ValueError(f"{str(path)!r}: target {tname!r} must have shape ({X.shape[0]},), got {y.shape}")
            if y.dtype.kind in "biuf":
                y = y.astype(np.float64)
                if not np.all(np.isfinite(y)):
                    raise ValueError(f"{str(path)!r}: target {tname!r} contains NaN or inf")
            elif y.dtype.kind == "U":
                y = y.astype(np.str_)
            else:
                raise ValueError(f"{str(path)!r}: target {tname!r} must hold numbers or text, got dtype {y.dtype}")
    return X, y, names, tname


def read_table(path, target=None, *, optional_target: bool = False, return_target_name: bool = False):
    """Read a data file, samples as rows.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv``/``.tsv`` file with a header row, an ``.npz`` archive or an ``.npy`` array (layouts in the
        module docstring). Other suffixes are read as CSV.
    target : str, optional
        The target column (CSV header name; ``.npz`` array name; ``.npy`` column ``colK`` or index ``K``).
    optional_target : bool, default False
        When the target is not in the file, return ``y=None`` instead of raising.
    return_target_name : bool, default False
        Also return the target's resolved name (``None`` when absent).

    Returns
    -------
    X : ndarray of shape (m, n), float64
        The feature columns, finite.
    y : ndarray of shape (m,) or None
        The target: float64, or text labels (CSV/``.npz`` only).
    columns : list of str
        The names of the ``n`` feature columns.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Malformed content, naming the line and column of a bad cell, or a missing target.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"data file {p!r} does not exist")
    if os.path.isdir(p):
        raise IsADirectoryError(f"data file {p!r} is a folder")
    suffix = os.path.splitext(p)[1].lower()
    if suffix == ".npy":
        X, y, names, tname = _read_npy(p, target, optional_target)
    elif suffix == ".npz":
        X, y, names, tname = _read_data_npz(p, target, optional_target)
    else:
        try:
            X, y, names, tname = _read_csv(p, target, optional_target)
        except ValueError as exc:
            msg = str(exc)
            raise ValueError(msg if repr(p) in msg else f"{p!r}, {msg}") from None
    return (X, y, names, tname) if return_target_name else (X, y, names)
