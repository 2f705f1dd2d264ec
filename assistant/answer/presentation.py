"""What an answer says about itself, in the same French words for the app, the CLI and exports:
how the question was read, and which parts of the answer come from where.

Deliberately left out: markup (each renderer escapes and formats these lines its own way).
"""

from __future__ import annotations

from assistant.domain import SCENARIOS, SECTIONS
from assistant.schema import Answer


def understood_line(answer: Answer) -> str:
    """« Question comprise : … — lue comme portant sur : Limites, scénario ENTPE. », or « Question
    lue comme portant sur : … » when it stands as asked: how the question was
    read (a follow-up rewritten, the section and scenario a word was taken for: « risques » →
    Limites), so that a wrong reading can be seen; empty when there is nothing to add."""
    understood = answer.standalone_question.strip()
    rewritten = understood and understood != answer.question.strip()
    read = [SECTIONS.get(s, s) for s in answer.read_as.get("sections", [])]
    read += [_scenario(s) for s in answer.read_as.get("scenarios", [])]
    if not rewritten and not read:
        return ""
    topics = ", ".join(read)
    if not rewritten:
        # The question stands as asked: only how it was read is worth a line.
        return f"Question lue comme portant sur : {topics}."
    line = f"Question comprise : {understood}"
    return line + (f" — lue comme portant sur : {topics}." if read else ".")


def _scenario(code: str) -> str:
    name = SCENARIOS.get(code, code)
    return name if name.lower().startswith(("note", "scénario")) else f"scénario {name}"


def method_line(backend: str) -> str:
    """How answers are made, for a status line: the same words in the app and the CLI, without
    the names of models, libraries or settings."""
    if backend == "extractive":
        return "extraits du dossier cités mot pour mot (pas de synthèse par un modèle de langage)"
    return (
        "extraits du dossier cités mot pour mot, puis une courte synthèse par un modèle de "
        "langage, chaque phrase vérifiée dans ces extraits"
    )


def origin_line(answer: Answer) -> str:
    """Where the answer comes from, without internal names: always the dossier's own lines, and
    a verified synthesis when a model wrote one."""
    if answer.refused:
        return "Réponse : le dossier ne traite pas cette question."
    if answer.synthesis:
        return (
            "Réponse : extraits du dossier mot pour mot, puis une synthèse écrite par le modèle de "
            "langage, chaque phrase vérifiée dans ces extraits."
        )
    return "Réponse : extraits du dossier mot pour mot."
