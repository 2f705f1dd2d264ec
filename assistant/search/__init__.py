"""Search: embeddings, the Chroma index, keyword search, query understanding and retrieval.

``embeddings`` builds the embedder from settings; ``index`` keeps the vector store and its
manifest (the only module that talks to Chroma); ``lexical`` is the French BM25; ``query``
reads what a question asks for (scenarios, sections, follow-ups); ``retrieval`` fuses the two
searches under that reading.

Imports ingestion and the base modules, never answering, the service, the app or the CLI.
"""
