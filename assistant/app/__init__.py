"""The Gradio application: a thin layer over ``assistant.service.Assistant``.

``webapp`` builds the interface (tabs Questions, Corpus, Évaluation, Aide); ``rendering`` turns
answers into HTML; ``uploads``, ``exports`` and ``eval_tab`` are the corpus, export and
evaluation parts of the screen. No answering logic lives here. Nothing imports this package.
"""
