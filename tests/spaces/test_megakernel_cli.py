"""`evoforge validate SCHEDULE` (runs/validate.py): exit code and explanation."""

from dataclasses import replace

import pytest

from runs.validate import validate
from search.protocols import UserError
from spaces.megakernel.ir import to_json
from spaces.megakernel.lower import LlamaShape, Tiling, lower


def test_accepts_a_lowering_and_rejects_a_race_with_reasons(tmp_path, capsys):
    s = lower(LlamaShape(), Tiling(rows=8, workers=2), "tile")
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(to_json(s))
    assert validate(str(good)) == 0 and "ACCEPT" in capsys.readouterr().out
    no_waits = replace(s, programs=tuple(tuple(st for st in p if st.kind != "wait") for p in s.programs))
    bad.write_text(to_json(no_waits))
    assert validate(str(bad)) == 1
    out = capsys.readouterr().out
    assert "REJECT" in out and "[race]" in out and "not ordered by happens-before" in out


def test_malformed_file_is_a_rejection_and_missing_file_a_user_error(tmp_path, capsys):
    junk = tmp_path / "junk.json"
    junk.write_text('{"format": "evoforge-megakernel-schedule/1", "capacity": -1}')
    assert validate(str(junk)) == 1 and "[malformed]" in capsys.readouterr().out
    with pytest.raises(UserError, match="SCHEDULE"):
        validate(str(tmp_path / "missing.json"))
