"""`evoforge run` on the float32 space, then `evoforge emit RUNDIR --lang c`: the file compiles with gcc -O3 -c."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runs"))
from cli_helpers import evoforge  # noqa: E402

SPEC = """
seed = 3
[space]
name = "float32"
target = "exp"
max_ops = 8
seed_polynomials = true
[[objectives]]
name = "ulp"
samples = 2000
[[objectives]]
name = "ops"
[search]
population = 8
generations = 1
[backend]
kind = "local"
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_run_then_emit_c_compiles(tmp_path):
    spec = tmp_path / "exp.toml"
    spec.write_text(SPEC)
    out = tmp_path / "run"
    result = evoforge("run", spec, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    emitted = evoforge("emit", out, "--lang", "c")
    assert emitted.returncode == 0, emitted.stderr
    path = Path(emitted.stdout.strip().splitlines()[-1])
    assert path.suffix == ".c" and "float evoforge_exp(float x)" in path.read_text()
    subprocess.run(["gcc", "-O3", "-c", str(path), "-o", str(tmp_path / "exp.o")], check=True)
    bad = evoforge("emit", out, "--lang", "latex")
    assert bad.returncode != 0 and "latex" in (bad.stdout + bad.stderr) and "Traceback" not in bad.stderr
