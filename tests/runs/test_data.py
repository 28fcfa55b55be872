import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from runs.data import DataWarning, load_csv
from search.protocols import UserError

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import evoforge  # noqa: E402


def write(tmp_path, text):
    path = tmp_path / "d.csv"
    path.write_text(text)
    return path


def test_loads_columns_and_target(tmp_path):
    data = load_csv(write(tmp_path, "a,b,y\n1,2,3\n4,5,9\n7,8,15\n"), "y")
    assert data.variables == ("a", "b")
    np.testing.assert_array_equal(data.X, [[1, 2], [4, 5], [7, 8]])
    np.testing.assert_array_equal(data.y, [3, 9, 15])


@pytest.mark.parametrize("text,target,message", [
    ("a,y\n1,2\nnan,3\n", "y", "1 row(s) with NaN, inf or empty cells (first at line 3, column 'a')"),
    ("a,y\n1,2\n,3\n", "y", "NaN, inf or empty cells"),
    ("a,y\n1,2\n2,3\n", "z", "data.target: column 'z' is not in d.csv; columns are a, y"),
    ("a,y\n1,x\n2,3\n", "y", "line 2, column 'y': 'x' is not a number"),
    ("a,y\n1,2\n", "y", "at least two data rows"),
    ("a,y\n1,2,3\n2,3\n", "y", "line 2 has 3 cells, the header has 2"),
])
def test_bad_csv_is_one_clear_error(tmp_path, text, target, message):
    with pytest.raises(UserError, match=None) as info:
        load_csv(write(tmp_path, text), target)
    assert message in str(info.value)


def test_constant_column_warns_but_loads(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_csv(write(tmp_path, "a,c,y\n1,5,2\n2,5,3\n3,5,4\n"), "y")
    assert data.X.shape == (3, 2)
    assert [str(w.message) for w in caught if w.category is DataWarning] == [
        "data: input column 'c' is constant (5); it carries no information"]


@pytest.mark.parametrize("text,message", [
    ("y,a,y\n1,2,1\n2,3,2\n3,5,4\n", "data.target: column 'y' appears 2 times in d.csv (columns 1, 3), so the target "
                                     "would also be an input; rename or drop the extra column"),
    ("a,b,a,y\n1,2,1,3\n2,3,2,5\n3,5,4,7\n", "data.path: column name 'a' appears more than once in d.csv (columns 1, "
                                            "3); give every column its own name"),
    ("a,y\n1,4\n2,4\n3,4\n", "data.target: column 'y' of d.csv is constant (4), so any constant fits it; give samples "
                             "where the target varies"),
])
def test_ambiguous_or_uninformative_csv_is_one_line_error(tmp_path, text, message):
    with pytest.raises(UserError) as info:
        load_csv(write(tmp_path, text), "y")
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_duplicate_target_is_an_error_line_from_the_cli(tmp_path):
    path = write(tmp_path, "y,x,y\n1,2,1\n2,3,2\n3,5,4\n")
    result = evoforge("run", "optree", "--data", path, "--target", "y", "--local", "--out", tmp_path / "run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: data.target: column 'y' appears 2 times in d.csv (columns 1, 3), so the target would also be an "
        "input; rename or drop the extra column"]
