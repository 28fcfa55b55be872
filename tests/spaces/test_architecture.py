"""Corpus, vocabulary reduction and fidelity measures of the compression pipeline (spaces/architecture/)."""

import numpy as np
import pytest

from search.protocols import UserError
from spaces.architecture.corpus import CorpusConfig, chunk_lines, english_fraction, is_prose, load_corpus
from spaces.architecture.fidelity import mean_cosine, retrieval_pairs, top1_agreement
from spaces.architecture.teacher import load_teacher, resolve_teacher
from spaces.architecture.vocabulary import SPECIALS, plan_vocabulary, reduce_vocabulary, student_tokenizer


@pytest.fixture(scope="module")
def teacher():
    return load_teacher("")


def test_chunks_are_whole_lines_of_about_the_requested_length():
    text = "\n".join(f"line number {i} with some words" for i in range(40))
    chunks = chunk_lines(text, 100, 10)
    assert all(c.splitlines()[0].startswith("line number") for c in chunks)
    assert all(100 <= len(c) <= 140 for c in chunks[:-1])
    assert sum(len(c.splitlines()) for c in chunks) == 40


def test_folder_corpus_splits_by_file(tmp_path):
    for i in range(30):
        (tmp_path / f"f{i}.txt").write_text("\n".join(f"file {i} sentence {j} about compression" for j in range(30)))
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01" * 100)
    corpus = load_corpus(str(tmp_path), CorpusConfig(chunk_chars=120, held_out_percent=20))
    files_of = lambda snippets: {s.split()[1] for s in snippets}  # noqa: E731
    assert corpus.train and corpus.held_out
    assert not files_of(corpus.train) & files_of(corpus.held_out)
    assert load_corpus(str(tmp_path), CorpusConfig(chunk_chars=120, held_out_percent=20)) == corpus


def test_training_snippets_can_be_shorter_than_held_out_ones(tmp_path):
    for i in range(30):
        (tmp_path / f"f{i}.txt").write_text("\n".join(f"file {i} sentence {j} about compression" for j in range(30)))
    plain = load_corpus(str(tmp_path), CorpusConfig(chunk_chars=120, held_out_percent=20))
    short = load_corpus(str(tmp_path), CorpusConfig(chunk_chars=120, train_chunk_chars=60, held_out_percent=20))
    assert short.held_out == plain.held_out  # the measure does not move
    assert np.mean([len(t) for t in short.train]) < 0.7 * np.mean([len(t) for t in plain.held_out])
    assert len(set(short.train)) > 1.5 * len(set(plain.train))


def test_empty_or_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--data"):
        load_corpus(str(tmp_path))
    with pytest.raises(UserError, match="--data"):
        load_corpus(str(tmp_path / "nope"))


def test_default_corpus_is_code_and_english_prose(tmp_path):
    """Two domains, each with its own held-out set; prose from a doc folder, English paragraphs only."""
    docs = tmp_path / "doc"
    for i in range(20):
        package = docs / f"pkg{i}"
        package.mkdir(parents=True)
        (package / "README").write_text("\n".join(
            f"This package {i} is used to read the files that are installed on the machine, line {j}, and it "
            "can be configured from the command line." for j in range(12)))
        (package / "table.txt").write_text("\n".join(f"{j:5d} {j * j:8d} {j ** 3:10d} | 0x{j:04x}" for j in range(50)))
        (package / "changelog").write_text("This is the changelog of the package and it is skipped by name.\n" * 5)
    (docs / "pkg0" / "LISEZMOI.md").write_text("Ce paquet lit les fichiers installes sur la machine. " * 8)
    config = CorpusConfig(max_train=60, max_held_out=8, doc_root=str(docs), prose_sources=("doc",),
                          held_out_percent=20)
    corpus = load_corpus(None, config)
    assert "standard library" in corpus.source and str(docs) in corpus.source
    assert corpus.train_domains.count("code") == 30 and corpus.train_domains.count("prose") == 30
    held = corpus.domain_held_out()
    assert list(held) == ["code", "prose"] and len(held["code"]) == 8 and 1 <= len(held["prose"]) <= 8
    prose = [t for t, d in zip(corpus.train, corpus.train_domains) if d == "prose"] + list(held["prose"])
    assert all(t.startswith("This package") for t in prose)  # no tables, changelogs or French
    assert not {t.split()[2] for t in held["prose"]} & {t.split()[2] for t in prose[:30]}  # split by file
    assert load_corpus(None, config) == corpus


def test_english_prose_filter():
    assert english_fraction("The student is trained on the text of the machine.") == pytest.approx(6 / 10)
    assert is_prose("It is used to read all of the files that are on the disk.", 0.2)
    assert not is_prose("def f(x): return {'a': x[0], 'b': x[1:]}", 0.2)
    assert not is_prose("Ce paquet lit les fichiers installes sur la machine.", 0.2)
    with pytest.raises(UserError, match="domains"):
        load_corpus(None, CorpusConfig(domains=("poetry",)))


def test_reduced_vocabulary_spells_every_word_without_unk(teacher):
    texts = ["def compress(model, limit_mb):", "    return sorted(shapes, key=lambda s: -s.gflops)",
             "Knowledge distillation trains a small student.", "x = {'a': 1, 'b': [2, 3]}  # é"]
    plan = plan_vocabulary(teacher.tokenizer, texts)
    vocab = reduce_vocabulary(teacher.tokenizer, plan, plan.floor + 10)
    assert vocab.tokens[: len(SPECIALS)] == SPECIALS
    assert len(vocab) == plan.floor + 10 and len(set(vocab.tokens)) == len(vocab)
    teacher_vocab = teacher.tokenizer.get_vocab()
    assert all(teacher_vocab[t] == i for t, i in zip(vocab.tokens, vocab.teacher_ids))
    tokenizer = student_tokenizer(teacher.tokenizer, vocab, 128)
    for text in texts:
        assert "[UNK]" not in tokenizer.tokenize(text)
        # fewer tokens kept -> the same text is spelled in more pieces
        assert len(tokenizer.tokenize(text)) >= len(teacher.tokenizer.tokenize(text))
    with pytest.raises(UserError, match="vocab"):
        reduce_vocabulary(teacher.tokenizer, plan, plan.floor - 1)


def test_fidelity_measures():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 8))
    assert mean_cosine(a, 3 * a) == pytest.approx(1.0)
    assert mean_cosine(a, -a) == pytest.approx(-1.0)
    assert top1_agreement(a[:10], a[10:], a[:10], a[10:]) == 1.0
    shuffled = a[10:][rng.permutation(10)]
    assert top1_agreement(a[:10], a[10:], a[:10], shuffled) < 1.0
    queries, documents = retrieval_pairs(["one\ntwo\nthree", "single line text"])
    assert queries == ["one", "single l"] and documents == ["two\nthree", "ine text"]


def test_teacher_resolves_offline_to_the_packaged_minilm(teacher):
    assert resolve_teacher("") == resolve_teacher("all-MiniLM-L6-v2") == teacher.path
    assert (teacher.path / "model.safetensors").stat().st_size > 80e6
    vectors = teacher.embed(["a function that adds numbers", "def add(a, b): return a + b", "the weather"], 32)
    assert vectors.shape == (3, 384)
    assert mean_cosine(vectors[:1], vectors[1:2]) > mean_cosine(vectors[:1], vectors[2:3])


def test_teacher_batches_by_token_count_and_returns_each_text_its_own_embedding(teacher):
    """Batched by token count, not characters: code and prose of equal length fall in different batches (little
    padding), and each text still gets the embedding it has alone, in the order given."""
    texts = ["f(g(h(i)))[0]", "A sentence.", "x={1:[2,(3,)]}[4]", "a[0]+b[1]*c[2]-d[3]", "Nothing happened here.",
             "The weather is lovely."]
    ids = teacher.tokenizer(texts)["input_ids"]
    assert len(ids[0]) > len(ids[1]) + 5 and abs(len(texts[0]) - len(texts[1])) < 3   # same chars, not tokens
    shapes = []
    hook = teacher.model.register_forward_pre_hook(lambda m, a, kw: shapes.append(tuple(kw["input_ids"].shape)),
                                                   with_kwargs=True)
    try:
        batched = teacher.embed(texts, 64, batch_size=2)
    finally:
        hook.remove()
    padded = sum(b * n for b, n in shapes)
    lengths = sorted(len(i) for i in ids)
    assert padded == sum(max(lengths[j:j + 2]) * len(lengths[j:j + 2]) for j in range(0, len(lengths), 2))
    alone = np.stack([teacher.embed([t], 64, batch_size=1)[0] for t in texts])
    assert np.abs(batched - alone).max() < 1e-5


def test_front_keeps_undominated_students_and_prefer_picks_one():
    from spaces.architecture.front import pareto_front, pick

    points = [{"name": "static W64", "mean_cosine": 0.70, "latency_ms": 0.05},
              {"name": "static W256", "mean_cosine": 0.78, "latency_ms": 0.06},
              {"name": "slow static", "mean_cosine": 0.75, "latency_ms": 0.50},  # dominated by W256
              {"name": "L1 H160", "mean_cosine": 0.86, "latency_ms": 3.0},
              {"name": "L2 H128", "mean_cosine": 0.85, "latency_ms": 1.5}]
    assert [p["name"] for p in pareto_front(points)] == ["static W64", "static W256", "L2 H128", "L1 H160"]
    assert pick(points, "fidelity")["name"] == "L1 H160"
    assert pick(points, "speed")["name"] == "static W64"
    assert pick(points, "balanced")["name"] == "L2 H128"  # within 0.02 of the best, twice as fast
    with pytest.raises(UserError, match="--prefer"):
        pick(points, "smallest")
