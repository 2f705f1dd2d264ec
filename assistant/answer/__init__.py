"""Answering: from retrieved passages to a cited, verified answer.

``pipeline`` is the one path a question takes (understand → retrieve → decide → context →
generate → verify → compose); ``answerability`` decides whether the dossier answers;
``extractive`` chooses and quotes lines (also the « Citations » and « Comparer » modes);
``citations`` verifies each sentence against its passages; ``inconsistencies`` finds where the
dossier contradicts itself; ``llm`` and ``model_files`` are the generation backends and the
local model's files; ``errors`` their French errors.

Imports search, ingestion and the base modules only.
"""
