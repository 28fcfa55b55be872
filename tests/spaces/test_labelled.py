"""Labelled rows for classifier teachers: the file formats, the split rules, the stdlib package task."""

import json

import pytest

from search.protocols import UserError
from spaces.architecture.labelled import load_labelled, write_labelled
from spaces.architecture.stdlib_task import PackageTask, package_task


def test_split_column_decides_and_round_trips(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label,split\nalpha beta,a,train\ngamma,b,train\n\"x, y\",a,test\nzeta,b,TEST\n")
    data = load_labelled(str(path))
    assert data.train == ("alpha beta", "gamma") and data.train_labels == ("a", "b")
    assert data.held_out == ("x, y", "zeta") and data.labels == ("a", "b")
    again = load_labelled(str(write_labelled(tmp_path / "again.csv", data)))
    assert (again.train, again.held_out, again.held_out_labels) == (data.train, data.held_out, data.held_out_labels)
    assert again.train_groups == ("", "")


def test_groups_stay_on_one_side_in_jsonl(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"body": f"line {i} of file {i % 7}", "y": i % 3, "group": f"file{i % 7}"} for i in range(140)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    data = load_labelled(str(path), text_column="body", label_column="y", held_out_percent=30)
    groups = lambda texts: {t.rsplit(" ", 1)[1] for t in texts}  # noqa: E731
    assert groups(data.train).isdisjoint(groups(data.held_out))
    assert len(data.train) + len(data.held_out) == 140 and data.labels == ("0", "1", "2")


@pytest.mark.parametrize("content,message", [
    ("text,label\nabc,\nxyz,b\n", "row 2 .* has an empty 'label'"),
    ("text,tag\nabc,a\n", "has no column 'label' .*--label-column"),
    ("text,label,split\na,x,train\nb,y,train\nc,x,train\n", "0 held-out rows"),
])
def test_bad_files_are_one_line(tmp_path, content, message):
    path = tmp_path / "d.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as error:
        load_labelled(str(path))
    assert "\n" not in str(error.value)


def test_stdlib_package_task_is_deterministic_and_split_by_file():
    task = PackageTask(packages=("json", "email"), train_per_label=30, held_out_per_label=10, seed=3)
    first, second = package_task(task), package_task(task)
    assert first == second
    assert set(first.train_labels) == {"json", "email"} and first.train_labels.count("json") == 30
    assert set(first.train).isdisjoint(first.held_out)
    assert all(g.startswith(f"{y}/") and g.endswith(".py") for g, y in zip(first.train_groups, first.train_labels))
    assert package_task(PackageTask(packages=task.packages, train_per_label=30, held_out_per_label=10,
                                    seed=4)).train != first.train
