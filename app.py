"""Start the web app: settings → assistant (index built when missing or stale) → interface.

``python app.py`` (what ``make run`` calls) serves http://127.0.0.1:7860. Gradio itself reads
``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``; everything else comes from ``Settings``
(``ASSISTANT_*`` variables; ``ASSISTANT_LLM=extractive`` starts without the LLM). When the
language model cannot be loaded, the app still starts, in extractive mode, and its status line
says why. The interface itself lives in ``assistant/webapp.py``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any


def open_assistant(settings: Any) -> Any:
    """The opened Assistant; it falls back to extractive mode (and says why) when the LLM fails."""
    from assistant.cli import _progress_bar, report_index
    from assistant.service import Assistant

    print("Ouverture de l'index (construit ou mis à jour s'il le faut)…", file=sys.stderr)
    assistant = Assistant.open(settings, progress=_progress_bar())
    if assistant.index_report is not None:
        report_index(assistant.index_report)
    if assistant.index_notice:
        print(f"Attention : {assistant.index_notice}", file=sys.stderr)
    return assistant


def main() -> int:
    from assistant.logs import setup_logging
    from assistant.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"Erreur de configuration : {error}", file=sys.stderr)
        return 2
    # One line per error on stderr, the traceback in the log file (settings.log_path).
    setup_logging(settings)
    from assistant.app.memory import keep_large_buffers_mapped

    # Before the model is loaded and the server's threads start: see assistant/app/memory.py.
    keep_large_buffers_mapped(os.environ)
    # Gradio reads its temp folder when it is imported: point it at the app's own folder first.
    settings.app_temp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ["GRADIO_TEMP_DIR"] = str(settings.app_temp_dir)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        assistant = open_assistant(settings)
        from assistant.app.model_wait import WAITING_NOTE, ModelWaiter, installing
        from assistant.app.webapp import AssistantApp

        note = ""
        if assistant.model is None and settings.llm == "auto" and installing():
            # ``make run`` on a fresh machine: the model's runtime installs in the background;
            # answer with the dossier's lines meanwhile, add the synthesis once it is ready.
            ModelWaiter(assistant, settings).start()
            note = WAITING_NOTE
            print(WAITING_NOTE, file=sys.stderr)
        app = AssistantApp(assistant, settings, startup_note=note)
        print(f"Modèle de langage : {assistant.status().get('llm', '?')}", file=sys.stderr)
        print("Démarrage de l'interface (Ctrl+C pour arrêter)…", file=sys.stderr)
        app.launch()
    except SettingsError as error:
        print(f"Erreur de configuration : {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Arrêt demandé.", file=sys.stderr)
        return 130
    except Exception as error:  # the user reads French; the traceback goes to the log
        logging.getLogger("assistant").error("startup failed", exc_info=True)
        print(f"Erreur au démarrage : {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
