"""The web app through its API (``gradio_client``), plus the renderers that keep it inert.

The app runs as ``python app.py`` in a subprocess (as ``make run`` starts it), in extractive
mode, on a free port, with its own copy of the session corpus and index: uploads and feedback
never touch the shared fixtures. ``start_app`` is reused by ``test_app_browser.py``.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import html
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from assistant.app.webapp import (
    UploadRejected,
    blocked_paths,
    check_upload,
    highlighted,
    md_escape,
    parse_auth,
    safe_markdown,
)
from assistant.evaluation.feedback import load_feedback, negative_to_cases
from assistant.search.index import CorpusIndex
from assistant.settings import Settings, SettingsError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
QUESTION = "Quelles sont les limites du scénario ENTPE ?"


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen[bytes]
    root: Path
    corpus_dir: Path
    index_dir: Path
    feedback_path: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def start_app(
    root: Path, settings: Settings, extra_env: dict[str, str] | None = None
) -> Iterator[RunningApp]:
    """``python app.py`` on copies of ``settings``' corpus and index folders, until the block ends."""
    corpus_dir, index_dir = root / "corpus", root / "index"
    shutil.copytree(settings.corpus_dir, corpus_dir)
    shutil.copytree(settings.index_dir, index_dir, ignore=shutil.ignore_patterns(".lock"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "GRADIO_", "CHROMA_"))}
    env |= {
        "ASSISTANT_CORPUS_DIR": str(corpus_dir),
        "ASSISTANT_INDEX_DIR": str(index_dir),
        "ASSISTANT_CACHE_DIR": str(settings.cache_dir),
        "ASSISTANT_FEEDBACK_PATH": str(root / "feedback" / "feedback.jsonl"),
        "ASSISTANT_APP_TEMP_DIR": str(root / "gradio"),
        "ASSISTANT_LLM": "extractive",
        "ASSISTANT_EMBEDDER": settings.embedder,
        "ASSISTANT_UPLOAD_MAX_MB": "1",
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "HF_HUB_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
    } | (extra_env or {})
    log_path = root / "app.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "app.py")],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    app = RunningApp(
        f"http://127.0.0.1:{port}/",
        process,
        root,
        corpus_dir,
        index_dir,
        root / "feedback" / "feedback.jsonl",
        log_path,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with {process.returncode}:\n{app.log()}")
            try:
                with urllib.request.urlopen(app.url, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not answer within 120 s:\n{app.log()}")
            time.sleep(0.5)
        yield app
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, built_index: CorpusIndex
) -> Iterator[RunningApp]:
    with start_app(tmp_path_factory.mktemp("app_api"), settings) as running:
        yield running


@pytest.fixture
def client(app: RunningApp):  # type: ignore[no-untyped-def]
    from gradio_client import Client

    return Client(app.url, verbose=False, download_files=str(app.root / "downloads"))


def _text(message: dict) -> str:
    """A chat message's text, whichever content shape the client returns."""
    content = message["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def _plain(markdown: str) -> str:
    """What a reader sees of escaped Markdown (backslash escapes removed)."""
    return re.sub(r"\\([^\w\s])", r"\1", markdown)


def _corpus_state(app: RunningApp) -> tuple[list[str], str]:
    manifest = (app.index_dir / "manifest.json").read_bytes()
    return sorted(p.name for p in app.corpus_dir.iterdir()), hashlib.sha256(manifest).hexdigest()


# ---------------------------------------------------------------------------------- the API


def test_ask_returns_a_cited_answer_and_its_sources(client) -> None:  # type: ignore[no-untyped-def]
    chat, sources, markdown = client.predict(QUESTION, "Réponse", [], [], api_name="/ask")
    answer = _text(chat[-1])
    assert chat[-1]["role"] == "assistant" and _text(chat[-2]).startswith("Quelles sont les limites")
    assert "\\[1\\]" in answer  # an inline marker, escaped so Markdown shows it as text
    assert "Réponse — aucun filtre" in answer
    assert sources.count('class="src-card"') >= 1 and "<mark>" in sources
    assert "Scénario ENTPE" in sources
    assert "## Références" in markdown and "[1] Scénario ENTPE" in markdown


def test_sources_arrive_before_the_answer(client) -> None:  # type: ignore[no-untyped-def]
    job = client.submit(QUESTION, "Réponse", [], [], api_name="/ask")
    outputs = list(job)  # every update the handler streamed, in order
    assert job.status().success
    first_sources = next(i for i, (_, sources, _) in enumerate(outputs) if 'class="src-card"' in sources)
    first_final = next(i for i, (chat, _, _) in enumerate(outputs) if "Sources" in _text(chat[-1]))
    assert first_sources < first_final
    assert "Passages retrouvés" in outputs[first_sources][1]


def test_filters_restrict_the_sources_and_show_on_the_answer(client) -> None:  # type: ignore[no-untyped-def]
    chat, sources, _ = client.predict(
        "Quelles sont les questions en suspens ?", "Réponse", ["uge"], ["questions"], api_name="/ask"
    )
    answer = _plain(_text(chat[-1]))
    assert "scénario : Université Gustave Eiffel ; section : Questions" in answer
    labels = [chunk.split("</span>")[0] for chunk in sources.split('class="src-ref">')[1:]]
    assert labels and all(label.startswith("Scénario UGE › Questions") for label in labels), labels


def test_compare_renders_one_column_per_scenario(client) -> None:  # type: ignore[no-untyped-def]
    chat, sources, markdown = client.predict("gouvernance", "Comparer", [], [], api_name="/ask")
    table = _text(chat[-1])
    header = next(line for line in table.splitlines() if line.startswith("| Section |"))
    assert "CMVRH" in header and "ENTPE" in header and "Université Gustave Eiffel" in header
    assert "\\[1\\]" in table and "<mark>" in sources
    assert "## Comparaison" in markdown
    path, _ = client.predict(api_name="/export_answer")
    assert "## Question\n\ngouvernance" in Path(path).read_text("utf-8")


def test_quotes_export_as_csv_and_markdown(client) -> None:  # type: ignore[no-untyped-def]
    path, status = client.predict(api_name="/export_quotes_csv")
    assert path is None and "Aucun résultat du mode Citations à exporter" in html.unescape(status)
    chat, _, _ = client.predict(
        "Cite textuellement les activités principales du CMA", "Citations", [], [], api_name="/ask"
    )
    assert "citations" in _text(chat[-1])
    path, status = client.predict(api_name="/export_quotes_csv")
    assert "Citations (CSV)" in status
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text("utf-8-sig"))))
    assert rows and rows[0]["rang"] == "1" and rows[0]["citation"] and " › " in rows[0]["reference"]
    markdown = Path(client.predict(api_name="/export_quotes_md")[0]).read_text("utf-8")
    assert markdown.startswith("# Citations :") and "\n> " in markdown and rows[0]["reference"] in markdown
    conversation = Path(client.predict(api_name="/export_conversation")[0]).read_text("utf-8")
    assert conversation.startswith("# Assistant du dossier CMA — conversation")


def test_feedback_is_appended_with_question_answer_passages_and_settings(client, app: RunningApp) -> None:  # type: ignore[no-untyped-def]
    status, _ = client.predict("", api_name="/feedback_up")
    assert "Posez d'abord une question" in html.unescape(status) and not app.feedback_path.exists()
    client.predict(QUESTION, "Réponse", [], [], api_name="/ask")
    status, comment = client.predict("Il manque la localisation des agents.", api_name="/feedback_down")
    assert "Merci" in status and comment == ""
    entry = load_feedback(app.feedback_path)[-1]
    assert entry["rating"] == "down" and entry["comment"] == "Il manque la localisation des agents."
    assert entry["question"] == QUESTION and entry["answer"] and entry["passages"] and entry["citations"]
    assert entry["settings"]["llm"] == "extractive" and "openai_api_key" not in entry["settings"]
    cases = negative_to_cases(load_feedback(app.feedback_path), first_id=900)
    assert (
        cases[-1]["question"] == QUESTION and cases[-1]["answerable"] is True and cases[-1]["evidence"] == []
    )


def test_question_over_the_length_cap_is_refused_in_french(client) -> None:  # type: ignore[no-untyped-def]
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=r"Votre question fait 1001 caractères : la limite est de 1000"):
        client.predict("x" * 1001, "Réponse", [], [], api_name="/ask")


def test_bad_uploads_are_refused_in_french_and_change_nothing(
    client, app: RunningApp, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from gradio_client import handle_file

    fake_docx = tmp_path / "note.docx"
    with zipfile.ZipFile(fake_docx, "w") as archive:
        archive.writestr("content.xml", "<x/>")
    cases = {
        "rapport.pdf": (b"Ceci n'est pas un PDF.\n", "ce n'est pas un PDF"),
        "casse.pdf": (
            b"%PDF-1.4\nthis is broken\n",
            "Document refusé : « casse.pdf » : le PDF est illisible",
        ),
        "note.docx": (fake_docx.read_bytes(), "ce n'est pas un document Word"),
        "notes.txt": ("Réunion du comité".encode("latin-1"), "n'est pas un texte encodé en UTF-8"),
        "outil.exe": (b"MZ\x90\x00", "format non pris en charge"),
        "gros.md": (b"# Titre\n\n" + b"texte " * 200_000, "la taille maximale est de 1 Mo"),
    }
    before = _corpus_state(app)
    for name, (data, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        status, documents, _, _ = client.predict(handle_file(str(path)), api_name="/upload")
        status = html.unescape(status)
        assert expected in status and "Le corpus n'a pas été modifié" in status, (name, status)
        assert "01_scenario_cmvrh.md" in documents
    assert _corpus_state(app) == before


def test_gradio_never_serves_the_corpus_index_or_feedback(app: RunningApp) -> None:
    (app.feedback_path.parent).mkdir(parents=True, exist_ok=True)
    app.feedback_path.touch()
    for target in (
        app.corpus_dir / "01_scenario_cmvrh.md",
        app.index_dir / "manifest.json",
        app.feedback_path,
        PROJECT_ROOT / "pyproject.toml",
    ):
        for route in ("gradio_api/file=", "file="):
            url = f"{app.url}{route}{target}"
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url, timeout=5)
            assert refused.value.code in (403, 404), url


def test_evaluation_tab_runs_a_retrieval_subset(client, retriever, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from gradio_client import handle_file

    from assistant.evaluation.dataset import load_cases
    from assistant.evaluation.report import fmt
    from assistant.evaluation.runs import retrieval_records, summarize_records

    lines = (PROJECT_ROOT / "evals" / "qa.jsonl").read_text(encoding="utf-8").splitlines()[:5]
    subset = tmp_path / "sous-ensemble.jsonl"
    subset.write_text("\n".join(lines) + "\n", encoding="utf-8")
    status, summary, failures, reports = client.predict(
        "qa.jsonl", handle_file(str(subset)), "Recherche", True, api_name="/evaluate"
    )
    assert "5 questions de « sous-ensemble.jsonl »" in html.unescape(status), status
    summary = html.unescape(summary)
    assert "mode Recherche · 5 questions" in summary and "Contrôle qualité" in summary
    # The figures are those of the evaluation module on the same index (the app's is a copy).
    expected = summarize_records(retrieval_records(load_cases(subset), retriever), "retrieval")
    for key in ("hit@5", "mrr@10"):
        shown = re.search(rf"<code>{re.escape(key)}</code></td><td>[^<]*</td><td[^>]*>([^<]*)</td>", summary)
        assert shown and shown.group(1) == fmt(expected[key], key), (key, summary)
    assert "fait" in summary  # the table per question kind
    assert ("Attendu" in failures) == (expected["hit@5"] < 1.0)  # failing questions are shown
    assert sorted(Path(p).name for p in reports) == ["report.html", "report.md"]
    report = Path(next(p for p in reports if p.endswith(".md"))).read_text(encoding="utf-8")
    assert "sous-ensemble" in report and "5" in report
    # A set with bad lines is refused whole, every bad line named, and nothing is offered.
    bad = tmp_path / "mauvais.jsonl"
    bad.write_text(lines[0] + '\n{pas du json\n{"id": "x"}\n', encoding="utf-8")
    status, summary, _, reports = client.predict(
        "qa.jsonl", handle_file(str(bad)), "Recherche", True, api_name="/evaluate"
    )
    status = html.unescape(status)
    assert "contient des lignes invalides" in status and "ligne 2 : JSON invalide" in status
    assert "ligne 3 : champ « kind » manquant ou vide" in status and summary == "" and not reports
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="not in the list of choices"):  # only a set of evals/, by name
        client.predict("../pyproject.toml", None, "Recherche", True, api_name="/evaluate")


# ------------------------------------------------------------------------ renderers, no server


HOSTILE = (
    "Voir <script>alert(1)</script> <img src=x onerror=alert(2)> ![x](http://127.0.0.1:9/x.png) "
    "[lien](http://127.0.0.1:9/l) <http://127.0.0.1:9/a> http://127.0.0.1:9/b ${alert(3)} {{x}} `code`"
)


def test_model_and_document_text_render_inert() -> None:
    for markdown in (md_escape(HOSTILE), safe_markdown("**Titre**\n- " + HOSTILE)):
        assert "<script" not in markdown and "<img" not in markdown and "<http" not in markdown
        assert "](" not in markdown.replace("\\](", "")  # no Markdown link or image left
        assert "`http://127.0.0.1:9/b`" in markdown  # bare URLs become inert code spans
    assert safe_markdown("**Titre**\n- point").startswith("**Titre**\n- point")
    panel = highlighted(HOSTILE, "alert(1)")
    assert "<script" not in panel and "<img" not in panel and "${" not in panel and "{{" not in panel
    assert "<mark>alert(1)</mark>" in panel


def test_upload_checks_read_the_content(tmp_path: Path) -> None:
    good = tmp_path / "fiche.md"
    good.write_text("# Fiche\n\nTexte.", encoding="utf-8")
    assert check_upload(good, "../../fiche.md", 1) == "fiche.md"
    disguised = tmp_path / "x.md"
    disguised.write_bytes(b"%PDF-1.7\n\xff\xfe binary")
    with pytest.raises(UploadRejected, match="UTF-8"):
        check_upload(disguised, "x.md", 1)
    docx = tmp_path / "vrai.docx"
    with zipfile.ZipFile(docx, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    assert check_upload(docx, "vrai.docx", 1) == "vrai.docx"


def test_feedback_entries_become_draft_cases(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    lines = [
        {"format_version": 1, "rating": "down", "question": "Q1 ?", "history": [], "mode": "answer"},
        {"format_version": 1, "rating": "up", "question": "Q2 ?"},
        {"format_version": 1, "rating": "down", "question": "Q1 ?", "history": [], "mode": "answer"},
        {
            "format_version": 1,
            "rating": "down",
            "question": "Et l'UGE ?",
            "mode": "answer",
            "history": [{"role": "user", "content": "Q1 ?"}, {"role": "assistant", "content": "R1"}],
        },
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n{cut", encoding="utf-8")
    cases = negative_to_cases(load_feedback(path), first_id=950)
    assert [(c["id"], c["kind"], c["question"]) for c in cases] == [
        ("q950", "fact", "Q1 ?"),
        ("q951", "multiturn", "Et l'UGE ?"),
    ]
    assert cases[1]["history"][0]["content"] == "Q1 ?"


def test_login_setting_and_blocked_paths(settings: Settings) -> None:
    assert parse_auth(None) is None and parse_auth("agent:s3cret:x") == ("agent", "s3cret:x")
    with pytest.raises(SettingsError, match="utilisateur:mot_de_passe"):
        parse_auth("agent")
    blocked = blocked_paths(settings)
    for folder in (settings.corpus_dir, settings.index_dir, settings.feedback_path.parent, PROJECT_ROOT):
        assert str(folder.resolve()) in blocked
