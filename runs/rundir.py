"""A run directory: everything about one run, in files a person can read and a resumed run can trust.

    spec.toml        the validated spec, overrides applied (what `evoforge resume` rebuilds the run from)
    checkpoint.pkl   the engine state after the last finished generation, replaced atomically each generation
    stats.jsonl      one JSON line of statistics per generation
    failures.jsonl   one JSON line per failed evaluation: generation, genome, reason
    front.json       the final front (rank, objective values, extras)
    code/            emitted code
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import tomli_w

from search.engine import EngineState
from search.protocols import UserError

CHECKPOINT_VERSION = 1


class RunDirectory:
    def __init__(self, path: Path):
        self.path = Path(path)

    spec_path = property(lambda self: self.path / "spec.toml")
    checkpoint_path = property(lambda self: self.path / "checkpoint.pkl")
    stats_path = property(lambda self: self.path / "stats.jsonl")
    failures_path = property(lambda self: self.path / "failures.jsonl")
    front_path = property(lambda self: self.path / "front.json")
    code_dir = property(lambda self: self.path / "code")

    @classmethod
    def create(cls, path: Path, spec_table: dict[str, Any]) -> RunDirectory:
        """A fresh run directory; refuses one that already holds a run, which `resume` should continue instead."""
        run = cls(path)
        if run.checkpoint_path.exists() or run.spec_path.exists():
            raise UserError(f"--out: {path} already holds a run; continue it with `evoforge resume {path}` or pick "
                            "another --out")
        run.path.mkdir(parents=True, exist_ok=True)
        run.spec_path.write_text(tomli_w.dumps(spec_table))
        return run

    @classmethod
    def open(cls, path: Path) -> RunDirectory:
        run = cls(path)
        if not run.spec_path.is_file():
            raise UserError(f"RUNDIR: {path} is not a run directory (no spec.toml); give a folder made by `evoforge run`")
        return run

    def save_checkpoint(self, state: EngineState) -> None:
        """Write the state to a temporary file in the same folder, fsync, then rename over the old checkpoint:
        a kill at any instant leaves either the old or the new checkpoint, never a torn one."""
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".checkpoint-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                pickle.dump({"version": CHECKPOINT_VERSION, "state": state}, handle, protocol=pickle.HIGHEST_PROTOCOL)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.checkpoint_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_checkpoint(self) -> EngineState | None:
        if not self.checkpoint_path.is_file():
            return None
        with open(self.checkpoint_path, "rb") as handle:
            payload = pickle.load(handle)
        if payload.get("version") != CHECKPOINT_VERSION:
            raise UserError(f"RUNDIR: checkpoint version {payload.get('version')} is not {CHECKPOINT_VERSION}; "
                            "rerun with this evoforge version")
        return payload["state"]

    def truncate_logs(self, generation: int) -> None:
        """Drop log lines written after the checkpointed generation (a kill between log and checkpoint)."""
        for path in (self.stats_path, self.failures_path):
            if path.is_file():
                keep = [line for line in path.read_text().splitlines()
                        if line.strip() and json.loads(line).get("generation", 0) <= generation]
                path.write_text("".join(line + "\n" for line in keep))

    def append(self, path: Path, records: list[dict[str, Any]]) -> None:
        if records:
            with open(path, "a") as handle:
                for record in records:
                    handle.write(json.dumps(record, default=str) + "\n")

    def read_stats(self) -> list[dict[str, Any]]:
        if not self.stats_path.is_file():
            return []
        return [json.loads(line) for line in self.stats_path.read_text().splitlines() if line.strip()]

    def read_failures(self) -> list[dict[str, Any]]:
        if not self.failures_path.is_file():
            return []
        return [json.loads(line) for line in self.failures_path.read_text().splitlines() if line.strip()]

    def write_front(self, rows: list[dict[str, Any]], stop_reason: str | None) -> None:
        self.front_path.write_text(json.dumps({"stop_reason": stop_reason, "front": rows}, indent=2, default=str))
