"""A run directory: everything about one run, in files a person can read and a resumed run can trust.

    spec.toml        the validated spec, overrides applied (what `evoforge resume` rebuilds the run from)
    checkpoint.pkl   the engine state after the last finished generation, replaced atomically each generation
    checkpoint.prev.pkl  the one before it, kept so that a damaged checkpoint costs one generation, not the run
    checkpoint.key   a random 256-bit key; every checkpoint carries an HMAC-SHA256 of its bytes under it
    stats.jsonl      one JSON line of statistics per generation
    failures.jsonl   one JSON line per failed evaluation: generation, genome, reason
    front.json       the final front (rank, objective values, extras)
    code/            emitted code, each file with a NAME.cert.json beside it (`evoforge verify`)

A checkpoint file is `MAGIC`, a header line `LENGTH HMAC` (payload bytes, hex HMAC-SHA256 of the payload), then
the pickled payload. The HMAC is checked before anything is unpickled: a truncated file, a flipped bit or an edit
made without the key is refused by name and never reaches `pickle.load`. It does not make a run directory from
someone else safe to resume: whoever made the directory holds its key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import secrets
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from search.engine import EngineState
from search.protocols import UserError

CHECKPOINT_VERSION = 2
MAGIC = b"evoforge checkpoint 2\n"
KEY_BYTES = 32


class CheckpointDamage(Exception):
    """A checkpoint file that cannot be trusted (truncated, corrupt, failed HMAC); the message says which and why."""


def _print_error(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class RunDirectory:
    def __init__(self, path: Path):
        self.path = Path(path)

    spec_path = property(lambda self: self.path / "spec.toml")
    checkpoint_path = property(lambda self: self.path / "checkpoint.pkl")
    previous_checkpoint_path = property(lambda self: self.path / "checkpoint.prev.pkl")
    key_path = property(lambda self: self.path / "checkpoint.key")
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
        fd = os.open(run.key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(KEY_BYTES) + "\n")
        return run

    @classmethod
    def open(cls, path: Path) -> RunDirectory:
        run = cls(path)
        if not run.spec_path.is_file():
            raise UserError(f"RUNDIR: {path} is not a run directory (no spec.toml); give a folder made by `evoforge run`")
        return run

    def _key(self) -> bytes:
        try:
            text = self.key_path.read_text().strip()
            key = bytes.fromhex(text)
        except FileNotFoundError:
            raise UserError(f"RUNDIR: {self.key_path} is missing, so no checkpoint of {self.path} can be checked; "
                            "runs made before checkpoints carried an HMAC cannot be resumed, start the run again") from None
        except (ValueError, UnicodeDecodeError, OSError):
            raise UserError(f"RUNDIR: {self.key_path} is damaged (expected {2 * KEY_BYTES} hex digits); "
                            "its checkpoints cannot be checked, start the run again") from None
        if len(key) != KEY_BYTES:
            raise UserError(f"RUNDIR: {self.key_path} holds {len(key)} bytes, expected {KEY_BYTES}; "
                            "its checkpoints cannot be checked, start the run again")
        return key

    def save_checkpoint(self, state: EngineState) -> None:
        """Write the state to a temporary file in the same folder and fsync it; move the current checkpoint to
        checkpoint.prev.pkl, then rename the new one into place. A kill at any instant leaves at least one whole,
        HMAC-checked checkpoint (the new one, or the previous one alone between the two renames)."""
        payload = pickle.dumps({"version": CHECKPOINT_VERSION, "state": state}, protocol=pickle.HIGHEST_PROTOCOL)
        tag = hmac.new(self._key(), payload, hashlib.sha256).hexdigest()
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".checkpoint-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(MAGIC + f"{len(payload)} {tag}\n".encode() + payload)
                handle.flush()
                os.fsync(handle.fileno())
            if self.checkpoint_path.is_file():
                os.replace(self.checkpoint_path, self.previous_checkpoint_path)
            os.replace(tmp, self.checkpoint_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read_checkpoint(self, path: Path) -> EngineState:
        """The state in one checkpoint file, after its length and HMAC check out; `CheckpointDamage` otherwise
        (the file is then never unpickled)."""
        data = path.read_bytes()
        if not data.startswith(MAGIC):
            old = data.startswith(b"\x80")  # a bare pickle: version 1, written without an HMAC
            raise CheckpointDamage("has no integrity header (written by an older evoforge)" if old
                                   else "is not an evoforge checkpoint (wrong header)")
        head, _, payload = data[len(MAGIC):].partition(b"\n")
        try:
            length_text, tag = head.decode("ascii").split(" ")
            length = int(length_text)
        except (UnicodeDecodeError, ValueError):
            raise CheckpointDamage("has a corrupt header") from None
        if len(payload) < length:
            raise CheckpointDamage(f"is truncated ({len(payload)} of {length} payload bytes)")
        if len(payload) > length:
            raise CheckpointDamage(f"has {len(payload) - length} unexpected bytes after its payload")
        expected = hmac.new(self._key(), payload, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, tag):
            raise CheckpointDamage("fails its HMAC check (changed since evoforge wrote it)")
        try:
            content = pickle.loads(payload)
        except Exception as exc:  # the HMAC held, so this is a version mismatch, not damage
            raise UserError(f"RUNDIR: {path} cannot be read by this evoforge version ({type(exc).__name__}: {exc}); "
                            "resume it with the version that wrote it") from None
        if not isinstance(content, dict) or content.get("version") != CHECKPOINT_VERSION:
            raise UserError(f"RUNDIR: {path} has checkpoint version {content.get('version') if isinstance(content, dict) else '?'}, "
                            f"not {CHECKPOINT_VERSION}; resume it with the version that wrote it")
        return content["state"]

    def load_checkpoint(self, report: Callable[[str], None] = _print_error) -> EngineState | None:
        """The newest checkpoint that checks out. A damaged checkpoint.pkl is reported as one `error:` line and
        checkpoint.prev.pkl is used instead; None when the run has no checkpoint yet."""
        current, previous = self.checkpoint_path, self.previous_checkpoint_path
        if not current.is_file() and not previous.is_file():
            return None
        problem = None
        if current.is_file():
            try:
                return self.read_checkpoint(current)
            except CheckpointDamage as exc:
                problem = f"{current} {exc}"
        else:
            problem = f"{current} is missing (the run was killed while replacing it)"
        if not previous.is_file():
            raise UserError(f"{problem}; there is no checkpoint.prev.pkl to fall back on, so start the run again "
                            "with `evoforge run`")
        try:
            state = self.read_checkpoint(previous)
        except CheckpointDamage as exc:
            raise UserError(f"{problem}, and {previous} {exc}; no checkpoint can be trusted, so start the run again "
                            "with `evoforge run`") from None
        report(f"error: {problem}; resuming from {previous.name} (generation {state.generation})")
        return state

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
