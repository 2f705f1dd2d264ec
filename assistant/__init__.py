"""Assistant conversationnel sur le dossier CMA : recherche, réponses citées, évaluation."""

__version__ = "0.1.0"
