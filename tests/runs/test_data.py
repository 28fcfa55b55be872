import warnings

import numpy as np
import pytest

from runs.data import DataWarning, load_csv
from search.protocols import UserError


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
