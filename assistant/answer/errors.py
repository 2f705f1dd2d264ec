"""The answer layer's errors, each with a French message for users.

Kept in their own module so that the generation backends (``llm.py``) and the model files
(``model_files.py``) can both raise them without importing each other.
"""

from __future__ import annotations


class QuestionError(ValueError):
    """The question cannot be processed; the message (French) says why."""


class LLMUnavailable(RuntimeError):
    """The language model cannot be used; the message (in French) says why and what to do."""


class LLMTimeout(LLMUnavailable):
    """Generation did not finish in time. ``partial`` holds the text produced before the cut."""

    def __init__(self, timeout_s: float, partial: str = "") -> None:
        self.timeout_s = timeout_s
        self.partial = partial
        if partial:
            detail = "la réponse a été interrompue avant la fin"
        else:
            detail = "aucun texte n'a été produit (le modèle est peut-être occupé par une autre question)"
        super().__init__(
            f"Le modèle de langage n'a pas répondu dans le délai imparti ({french_number(timeout_s)} s) : "
            f"{detail}. Posez une question plus courte ou augmentez le délai "
            "(ASSISTANT_LLM_TIMEOUT)."
        )


def french_number(value: float) -> str:
    return f"{value:g}".replace(".", ",")
