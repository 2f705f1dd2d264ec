"""Ingestion: reading documents of every format and cutting them into passages.

``formats`` loads a file (Markdown, text, PDF through ``pdf``/``pdf_layout``, Word through
``docx``) into elements; ``structure`` places them in the dossier's structure (document ›
section › row); ``chunking`` makes the passages that are embedded and searched. ``errors`` holds
the refusal every loader raises, with its French message.

Imports only the base modules (settings, schema, text, domain).
"""
