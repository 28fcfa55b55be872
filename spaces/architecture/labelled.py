"""Labelled text for classifier teachers: a CSV or JSON-lines file of texts and their labels, split for scoring.

A classifier teacher is distilled on its own soft labels, so training needs only texts; the labels are what the
report's accuracy is measured against (teacher and student on the same held-out rows). The file has a text column
and a label column (names configurable) and optionally:
  split  "train" or "test" (also "held_out", "validation") per row: the held-out set as the user chose it;
  group  rows of one group (a file, a user, a document) fall on the same side of the split, so the held-out set
         holds no text from a group seen in training.
Without a split column, `held_out_percent` of the groups (each row its own group without a group column) are held
out by a stable hash, so the split does not depend on the row order or the seed.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from search.protocols import UserError

_HELD_OUT_NAMES = {"test", "held_out", "heldout", "validation", "valid", "dev", "eval"}


@dataclass(frozen=True)
class LabelledData:
    """Training and held-out texts with their labels (strings, as in the file), and where they came from."""

    train: tuple[str, ...]
    train_labels: tuple[str, ...]
    held_out: tuple[str, ...]
    held_out_labels: tuple[str, ...]
    source: str
    train_groups: tuple[str, ...] = ()   # each training row's group (file, document) when the file names one

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label the file uses, sorted."""
        return tuple(sorted(set(self.train_labels) | set(self.held_out_labels)))


def held_out_key(key: str, percent: int) -> bool:
    """Whether a group goes to the held-out side: a stable hash of its key (the same on every machine)."""
    return int(hashlib.sha1(key.encode("utf-8", "replace")).hexdigest()[:8], 16) % 100 < percent


def read_rows(path: Path) -> list[dict[str, str]]:
    """The file's rows as dicts of strings: CSV (header row) or JSON lines (.jsonl / .ndjson, one object a line)."""
    try:
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            rows = []
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    value = json.loads(line)
                    if not isinstance(value, dict):
                        raise UserError(f"--data: line {number} of {str(path)!r} is not a JSON object")
                    rows.append({str(k): "" if v is None else str(v) for k, v in value.items()})
            return rows
        with path.open(newline="", encoding="utf-8") as handle:
            return [{k: v or "" for k, v in row.items() if k is not None} for row in csv.DictReader(handle)]
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise UserError(f"--data: {str(path)!r} is not a UTF-8 CSV or JSON-lines file ({exc})") from exc


def load_labelled(data: str, text_column: str = "text", label_column: str = "label",
                  held_out_percent: int = 20) -> LabelledData:
    """The labelled rows of `data`, split into training and held-out (see the module docstring)."""
    path = Path(data).expanduser()
    if not path.is_file():
        raise UserError(f"--data: {data!r} is not a file; a classifier teacher needs labelled rows: pass --data "
                        f"FILE.csv (or .jsonl) with columns {text_column!r} and {label_column!r}")
    rows = read_rows(path)
    if not rows:
        raise UserError(f"--data: {str(path)!r} has no rows; it needs columns {text_column!r} and {label_column!r}")
    columns = set(rows[0])
    for column, option in ((text_column, "--text-column"), (label_column, "--label-column")):
        if column not in columns:
            raise UserError(f"--data: {str(path)!r} has no column {column!r} (columns: {', '.join(sorted(columns))}); "
                            f"add it or name the column with {option}")
    sides: dict[bool, tuple[list[str], list[str], list[str]]] = {False: ([], [], []), True: ([], [], [])}
    for number, row in enumerate(rows, 2):
        text, label = row.get(text_column, ""), row.get(label_column, "").strip()
        if not text.strip():
            continue
        if not label:
            raise UserError(f"--data: row {number} of {str(path)!r} has an empty {label_column!r}; every row needs "
                            "a label")
        if "split" in row and row["split"].strip():
            held = row["split"].strip().lower() in _HELD_OUT_NAMES
        else:
            held = held_out_key(row.get("group") or text, held_out_percent)
        sides[held][0].append(text)
        sides[held][1].append(label)
        sides[held][2].append(row.get("group") or "")
    (train, train_labels, groups), (held, held_labels, _) = sides[False], sides[True]
    if len(train) < 2 or len(held) < 2:
        raise UserError(f"--data: {str(path)!r} gives {len(train)} training and {len(held)} held-out rows; both "
                        "need at least 2 (add rows, or a 'split' column with train/test)")
    return LabelledData(tuple(train), tuple(train_labels), tuple(held), tuple(held_labels), str(path.resolve()),
                        tuple(groups) if "group" in columns else ())


def write_labelled(path: Path, data: LabelledData, text_column: str = "text", label_column: str = "label") -> Path:
    """Write `data` as a CSV with a split column (train / test) and, when the training rows have groups, a group
    column (empty on held-out rows), readable by `load_labelled`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = data.train_groups or ("",) * len(data.train)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([text_column, label_column, "split", "group"])
        writer.writerows((t, lab, "train", g) for t, lab, g in zip(data.train, data.train_labels, groups))
        writer.writerows((t, lab, "test", "") for t, lab in zip(data.held_out, data.held_out_labels))
    return path
