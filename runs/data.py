"""Loading a CSV of samples into a `Dataset`, with the checks a user needs before a long search.

Errors (the run cannot make sense): missing file, missing target column, duplicate column names (the target among
them would also be an input, and the search would fit it by copying), non-numeric cells, NaN or empty cells, fewer
than two rows, a constant target (any constant fits it). Warning (the run can go on): a constant input column
carries no information.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

from search.protocols import Dataset, UserError


class DataWarning(UserWarning):
    """A dataset oddity worth telling the user about; the CLI prints it as one 'warning:' line."""


def _check_unique(header: list[str], target: str, path: Path) -> None:
    """Column names must be unique: a repeated name is ambiguous, and a repeated target leaks the answer."""
    positions = [i + 1 for i, h in enumerate(header) if h == target]
    if len(positions) > 1:
        raise UserError(f"data.target: column {target!r} appears {len(positions)} times in {path.name} (columns "
                        f"{', '.join(map(str, positions))}), so the target would also be an input; rename or drop the "
                        f"extra column")
    seen: set[str] = set()
    for h in header:
        if h in seen:
            where = ", ".join(str(i + 1) for i, g in enumerate(header) if g == h)
            raise UserError(f"data.path: column name {h!r} appears more than once in {path.name} (columns {where}); "
                            f"give every column its own name")
        seen.add(h)


def load_csv(path: Path, target: str) -> Dataset:
    """Read a CSV with a header row; every column but `target` becomes an input variable."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise UserError(f"data.path: cannot read {path} ({exc.strerror}); give an existing CSV file") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"data.path: {path} is not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02x}); "
                        "save the CSV as UTF-8") from None
    except csv.Error as exc:
        raise UserError(f"data.path: {path} is not a readable CSV ({exc}); check its quoting") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 3:
        raise UserError(f"data.path: {path} needs a header row and at least two data rows, found {max(0, len(rows) - 1)}")
    header = [h.strip() for h in rows[0]]
    if target not in header:
        raise UserError(f"data.target: column {target!r} is not in {path.name}; columns are {', '.join(header)}")
    _check_unique(header, target, path)
    if len(header) < 2:
        raise UserError(f"data.path: {path.name} has only the target column; add at least one input column")
    values = np.full((len(rows) - 1, len(header)), np.nan)
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise UserError(f"data.path: {path.name} line {i} has {len(row)} cells, the header has {len(header)}")
        for j, cell in enumerate(row):
            cell = cell.strip()
            try:
                values[i - 2, j] = float(cell) if cell else np.nan
            except ValueError:
                raise UserError(f"data.path: {path.name} line {i}, column {header[j]!r}: {cell!r} is not a number") from None
    bad = ~np.isfinite(values)
    if bad.any():
        rows_bad = np.flatnonzero(bad.any(axis=1))
        col = header[int(np.flatnonzero(bad.any(axis=0))[0])]
        raise UserError(f"data.path: {path.name} has {len(rows_bad)} row(s) with NaN, inf or empty cells (first at line "
                        f"{rows_bad[0] + 2}, column {col!r}); drop or fill those rows")
    t = header.index(target)
    inputs = [j for j in range(len(header)) if j != t]
    for j in inputs:
        if np.ptp(values[:, j]) == 0.0:
            warnings.warn(f"data: input column {header[j]!r} is constant ({values[0, j]:g}); it carries no information",
                          DataWarning, stacklevel=2)
    if np.ptp(values[:, t]) == 0.0:
        raise UserError(f"data.target: column {target!r} of {path.name} is constant ({values[0, t]:g}), so any constant "
                        f"fits it; give samples where the target varies")
    return Dataset(X=values[:, inputs].copy(), y=values[:, t].copy(), variables=tuple(header[j] for j in inputs),
                   target=target, source=str(path))
