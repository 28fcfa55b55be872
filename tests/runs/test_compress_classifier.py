"""`evoforge compress` on a classifier teacher: the student learns the teacher's labels, and a classifier teacher
without labels is one error line.

The teacher is made here: a one-layer, 32-wide BERT classifier with MiniLM's tokenizer, trained for a few seconds on
a two-package stdlib task (email vs tkinter snippets, split by file), so its labels mean something.
"""

import json
from dataclasses import replace

import numpy as np
import pytest

from runs.compress import CompressSettings
from runs.compress_classifier import ClassifierSettings, compress_classifier
from search.protocols import UserError
from spaces.architecture.labelled import write_labelled
from spaces.architecture.stdlib_task import PackageTask, package_task

TASK = PackageTask(packages=("email", "tkinter"), train_per_label=150, held_out_per_label=60, seed=0)
MICRO = CompressSettings(seq_length=64, max_length=64, static_widths=(32,), latency_texts=10, threads=1)
QUICK = ClassifierSettings(steps=150, batch_size=32, transformer_steps=20)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EVOFORGE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def task_csv(tmp_path_factory):
    return write_labelled(tmp_path_factory.mktemp("task") / "task.csv", package_task(TASK))


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    """A small BERT classifier trained on TASK's training rows (seeded), saved as a Hugging Face folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from spaces.architecture.teacher import resolve_teacher

    data = package_task(TASK)
    labels = data.labels
    tokenizer = AutoTokenizer.from_pretrained(resolve_teacher("all-MiniLM-L6-v2"), local_files_only=True)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=len(labels),
                        id2label=dict(enumerate(labels)), label2id={v: i for i, v in enumerate(labels)})
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    encoded = tokenizer(list(data.train), truncation=True, max_length=64, padding=True, return_tensors="pt")
    target = torch.as_tensor([labels.index(y) for y in data.train_labels])
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    rng = np.random.default_rng(0)
    model.train()
    for _ in range(30):
        rows = torch.as_tensor(rng.choice(len(target), 32, replace=False))
        loss = model(input_ids=encoded["input_ids"][rows], attention_mask=encoded["attention_mask"][rows],
                     labels=target[rows]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    folder = tmp_path_factory.mktemp("teacher")
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_student_learns_the_teachers_labels(tmp_path, tiny_teacher, task_csv):
    from spaces.architecture.classifier_student import StaticClassifier

    out = compress_classifier(str(tiny_teacher), "0.5MB", str(task_csv), str(tmp_path / "student"), MICRO, QUICK,
                              log=lambda _: None)
    report = json.loads((out / "report.json").read_text())
    teacher, student = report["teacher_figures"], report["student"]
    assert report["data"]["held_out"] == len(package_task(TASK).held_out)
    assert teacher["accuracy"] > 0.85                          # the teacher learnt the task
    assert student["agreement"] > 0.85                         # and the student learnt the teacher
    assert student["accuracy"] > teacher["accuracy"] - 0.08
    assert all(r["file_mb"] <= 0.5 for r in report["students"])
    assert [r["kind"] for r in report["students"]] == ["static", "transformer"]  # the one-layer body trains too
    assert teacher["latency_ms"] > 0 and student["latency_ms"] > 0
    loaded = StaticClassifier(out)
    assert loaded.labels == ("email", "tkinter")
    assert loaded.predict(["import tkinter\nroot = tkinter.Tk()\nroot.mainloop()  # a window"]).tolist() == [1]
    assert "accuracy gap" in (out / "report.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student"]


def test_classifier_without_labels_is_one_line(tmp_path, tiny_teacher, capsys):
    from runs.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["compress", str(tiny_teacher), "--to", "1MB", "--out", str(tmp_path / "s")])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: --data:") and "is a classifier" in lines[0] and "label" in lines[0]
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(SystemExit):
        main(["compress", str(tiny_teacher), "--to", "1MB", "--search-only", "--data", "rows.csv"])
    assert capsys.readouterr().err.startswith("error: --search-only: a classifier teacher has no shape search")


def test_unlabelled_folder_or_missing_column_is_refused(tmp_path, tiny_teacher, task_csv):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.py").write_text("x = 1\n" * 20)
    with pytest.raises(UserError, match="not a file; a classifier teacher needs labelled rows"):
        compress_classifier(str(tiny_teacher), "1MB", str(folder), str(tmp_path / "s"), MICRO, QUICK)
    with pytest.raises(UserError, match="has no column 'package'.*--label-column"):
        compress_classifier(str(tiny_teacher), "1MB", str(task_csv), str(tmp_path / "s"), MICRO, QUICK,
                            label_column="package")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text(task_csv.read_text().replace(",email,", ",mailbox,"))
    with pytest.raises(UserError, match="labels mailbox .* are not the teacher's"):
        compress_classifier(str(tiny_teacher), "1MB", str(wrong), str(tmp_path / "s"), MICRO, QUICK)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["texts", "wrong.csv"]


def test_too_small_a_limit_names_the_size(tmp_path, tiny_teacher, task_csv):
    with pytest.raises(UserError, match="--to: 0.01 MB holds no static classifier"):
        compress_classifier(str(tiny_teacher), "0.01MB", str(task_csv), str(tmp_path / "s"),
                            replace(MICRO, static_widths=(64,)), QUICK)


def test_a_transformer_student_that_cannot_fit_the_time_budget_is_skipped_not_cut(tmp_path, tiny_teacher, task_csv):
    out = compress_classifier(str(tiny_teacher), "0.5MB", str(task_csv), str(tmp_path / "student"),
                              replace(MICRO, time_budget=0.5), replace(QUICK, transformer_steps=400),
                              log=lambda _: None)
    report = json.loads((out / "report.json").read_text())
    assert [r["kind"] for r in report["students"]] == ["static"]
    assert report["transformer_skipped_for_time"] is True
    assert "transformer student was not trained" in (out / "report.md").read_text()


def test_classifier_options_that_do_not_apply_are_one_line_errors(tmp_path, tiny_teacher, task_csv, capsys):
    from runs.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["compress", str(tiny_teacher), "--to", "1MB", "--data", str(task_csv), "--workers", "2",
              "--out", str(tmp_path / "s")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --workers: 2 asked for")
    assert list(tmp_path.iterdir()) == []
