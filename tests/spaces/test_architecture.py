"""Corpus, vocabulary reduction and fidelity measures of the compression pipeline (spaces/architecture/)."""

import numpy as np
import pytest

from search.protocols import UserError
from spaces.architecture.corpus import CorpusConfig, chunk_lines, load_corpus
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


def test_empty_or_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--data"):
        load_corpus(str(tmp_path))
    with pytest.raises(UserError, match="--data"):
        load_corpus(str(tmp_path / "nope"))


def test_default_corpus_is_the_standard_library():
    corpus = load_corpus(None, CorpusConfig(max_train=50, max_held_out=10))
    assert "standard library" in corpus.source and len(corpus.train) == 50 and len(corpus.held_out) == 10


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
