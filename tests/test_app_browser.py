"""The web app in a real browser: Debian's Chromium driven by Playwright (``make test``).

One walk through the app as a first-time user would take it — ask, read the sources, compare,
export, give feedback, upload a bad file then a hostile one — with screenshots saved under
``test-artifacts/``; then a second app with a language model (the OpenAI-compatible stand-in,
streaming slowly), whose page is polled while it answers: the verbatim answer comes first, only
verified synthesis sentences ever appear, and a question outside the dossier shows no model
text. The hostile document carries a ``<script>``, an external Markdown image and link and
template syntax: the test checks that none of it runs or loads anything.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.evaluation.feedback import load_feedback
from assistant.search.index import CorpusIndex
from assistant.settings import Settings

pytestmark = pytest.mark.browser

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 60_000
HOSTILE_DOC = """---
title: Note de test sur l'hébergement
label: Note hébergement
---
# Note de test sur l'hébergement

## Hébergement du zorglub

Le zorglub est hébergé à Perpignan depuis 2019. <script>window.__pwned = 1; alert("script")</script>
<img src="http://127.0.0.1:9/img.png" onerror="window.__pwned = 2"> ![x](http://127.0.0.1:9/x.png)
[un lien](http://127.0.0.1:9/lien) ${window.__pwned = 3} {{constructor.constructor('window.__pwned = 4')()}}
"""


HOSTILE_QUESTION = (
    "Cite le zorglub <script>window.__pwned = 5</script> <img src=http://127.0.0.1:9/q.png "
    "onerror='window.__pwned = 6'> ![q](http://127.0.0.1:9/q2.png)"
)


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, built_index: CorpusIndex
) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            "Chromium absent : installez-le avec « apt-get install -y chromium » (fait par « make test »)."
        )
    from test_app_api import start_app

    with start_app(tmp_path_factory.mktemp("app_browser"), settings) as running:
        yield running


@pytest.fixture(scope="module")
def browser(app: Any) -> Iterator[Any]:
    """One Chromium for the module (Playwright's sync API allows one running instance)."""
    from playwright.sync_api import sync_playwright

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(app: Any, browser: Any) -> Iterator[Any]:
    # A laptop screen; the locale is English on purpose: the page must be French anyway.
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.requests = []  # type: ignore[attr-defined]
    page.dialogs = []  # type: ignore[attr-defined]
    page.on("request", lambda request: page.requests.append(request.url))
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(app.url)
    page.wait_for_selector("#question textarea")
    yield page
    context.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def ask(page: Any, question: str, mode: str = "Réponse") -> None:
    """Ask in ``mode`` and wait for the final (verified) answer to replace the streamed one."""
    page.locator("#mode").get_by_label(mode, exact=True).check()
    before = page.locator("#chat [data-testid='bot']").count()
    page.fill("#question textarea", question)
    page.click("#send")
    page.wait_for_function(
        """n => {
            const bots = document.querySelectorAll("#chat [data-testid='bot']");
            if (bots.length <= n) return false;
            const text = bots[bots.length - 1].innerText;
            return !["Recherche des passages", "Synthèse en cours"].some(s => text.includes(s));
        }""",
        arg=before,
    )
    page.wait_for_function("() => !document.querySelector('#send').disabled")  # ready for the next one


def last_answer(page: Any) -> str:
    return str(page.locator("#chat [data-testid='bot']").last.inner_text())


def test_first_visit_shows_status_examples_and_no_external_request(page: Any, app: Any) -> None:
    assert "Assistant du dossier CMA" in page.locator("#app-header").inner_text()
    status = page.locator("#status-line").inner_text()
    assert "mot pour mot (pas de synthèse par un modèle de langage)" in status and "passages" in status
    assert not any(word in status for word in ("Embeddings", "llama", "licence", "gemma"))
    assert "Quelles sont les limites du scénario ENTPE ?" in page.inner_text("body")
    # 1366×768: the question box and the labelled « Nouvelle conversation » button need no scrolling.
    # Measured from the top of the page: the box's autofocus may have scrolled it into view.
    page.evaluate("() => window.scrollTo(0, 0)")
    box = page.locator("#question textarea").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 768, box
    assert page.locator("#new-conversation").inner_text().strip() == "Nouvelle conversation"
    assert page.evaluate("() => document.documentElement.lang") == "fr"
    shot(page, "01_accueil")
    hosts = {url.split("/")[2] for url in page.requests if url.startswith("http")}
    assert hosts == {app.url.split("/")[2]}, hosts  # no font, script or image from elsewhere


def test_empty_question_is_refused_in_the_page(page: Any) -> None:
    page.click("#send")
    page.wait_for_selector("#question-notice .msg-error")
    assert "Écrivez d'abord une question" in page.locator("#question-notice").inner_text()
    assert page.locator("#chat [data-testid='bot']").count() == 0


def test_answer_streams_with_markers_and_highlighted_sources(page: Any) -> None:
    ask(page, "Quelles sont les limites du scénario ENTPE ?")
    page.wait_for_selector("#sources .src-card mark")
    assert page.locator("#question-notice").inner_text() == ""
    answer = last_answer(page)
    assert "[1]" in answer and "Réponse — aucun filtre" in answer
    assert "mot pour mot" in answer and "Synthèse" not in answer  # no model in this app
    assert "Question lue comme portant sur : Limites, scénario ENTPE." in answer
    assert "Scénario ENTPE › Limites" in page.locator("#sources").inner_text()
    shot(page, "02_reponse_et_sources")


def choose(page: Any, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option, exact=True).click()
    page.locator("#app-header").click()  # closes the list


def test_filters_are_shown_on_the_answer(page: Any) -> None:
    choose(page, "#filter-scenarios", "Université Gustave Eiffel")
    choose(page, "#filter-sections", "Questions")
    ask(page, "Quelles questions restent ouvertes ?")
    assert "scénario : Université Gustave Eiffel ; section : Questions" in last_answer(page)
    assert all(
        ref.startswith("Scénario UGE › Questions")
        for ref in page.locator("#sources .src-ref").all_inner_texts()
    )
    shot(page, "03_filtres")
    for dropdown in ("#filter-scenarios", "#filter-sections"):
        page.locator(f"{dropdown} .remove-all").click()


def test_compare_mode_renders_a_table_per_scenario(page: Any) -> None:
    ask(page, "gouvernance", mode="Comparer")
    table = page.locator("#chat table").last
    header = table.locator("th").all_inner_texts()
    assert header[0] == "Section" and any("CMVRH" in h for h in header) and any("ENTPE" in h for h in header)
    cells = table.inner_text()
    assert "[1]" in cells and "À redéfinir" in cells  # the row's words, not only its title
    shot(page, "04_comparaison")


def test_exports_download_markdown_and_csv(page: Any, tmp_path: Path) -> None:
    page.locator("#exports").get_by_text("Copier et exporter").click()
    page.click("#export-answer")
    link = page.locator("#export-file a").first
    link.wait_for()
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "reponse.md"
    download.value.save_as(saved)
    text = saved.read_text(encoding="utf-8")
    assert "## Question\n\ngouvernance" in text and "## Références" in text
    ask(page, "Cite textuellement les activités principales du CMA", mode="Citations")
    page.click("#export-quotes-csv")
    page.wait_for_function("() => document.querySelector('#export-file')?.innerText.includes('.csv')")
    with page.expect_download() as download:
        page.locator("#export-file a").first.click()
    download.value.save_as(tmp_path / "citations.csv")
    assert (tmp_path / "citations.csv").read_text(encoding="utf-8-sig").startswith("rang,citation,reference")
    shot(page, "05_citations_et_export")


def test_feedback_with_comment_is_saved(page: Any, app: Any) -> None:
    page.fill("#comment textarea", "Les citations conviennent.")
    page.click("#feedback-up")
    page.wait_for_selector("#feedback-status .msg-ok")
    entry = load_feedback(app.feedback_path)[-1]
    assert entry["rating"] == "up" and entry["comment"] == "Les citations conviennent."
    assert entry["mode"] == "quote" and entry["passages"]
    shot(page, "06_avis")


def test_bad_upload_shows_a_french_error_and_changes_nothing(page: Any, app: Any, tmp_path: Path) -> None:
    before = sorted(p.name for p in app.corpus_dir.iterdir())
    page.get_by_role("tab", name="Corpus").click()
    upload = page.locator("#upload").inner_text()
    assert "Déposez le fichier ici" in upload and "Drop File Here" not in upload
    fake = tmp_path / "budget.pdf"
    fake.write_text("Ceci est du texte, pas un PDF.", encoding="utf-8")
    page.set_input_files("#upload input[type=file]", str(fake))
    page.wait_for_selector("#upload-button:not([disabled])")
    time.sleep(0.5)  # let the upload finish before sending
    page.click("#upload-button")
    page.wait_for_selector("#corpus-status .msg-error")
    message = page.locator("#corpus-status").inner_text()
    assert "ce n'est pas un PDF" in message and "Le corpus n'a pas été modifié" in message
    assert sorted(p.name for p in app.corpus_dir.iterdir()) == before
    shot(page, "07_depot_refuse")


def test_hostile_document_and_question_render_inert(page: Any, app: Any, tmp_path: Path) -> None:
    hostile = tmp_path / "note_hebergement.md"
    hostile.write_text(HOSTILE_DOC, encoding="utf-8")
    page.set_input_files("#upload input[type=file]", str(hostile))
    time.sleep(1.0)
    page.click("#upload-button")
    page.wait_for_selector("#corpus-status .msg-ok", timeout=120_000)
    assert "note_hebergement.md" in page.locator("#documents").inner_text()
    page.get_by_role("tab", name="Questions").click()
    ask(page, "Où le zorglub est-il hébergé ?")
    assert "Perpignan" in last_answer(page)
    # The loaders drop HTML tags from documents; a question reaches the page as typed.
    ask(page, HOSTILE_QUESTION, mode="Citations")
    sources = page.locator("#sources").inner_text()
    assert "![x](http://127.0.0.1:9/x.png)" in sources and "${window.__pwned = 3}" in sources  # as text
    assert "<script>" in page.locator("#chat [data-testid='user']").last.inner_text()
    assert page.locator("#chat script, #sources script, #chat img, #sources img").count() == 0
    assert page.locator("a[href*='127.0.0.1:9']").count() == 0
    time.sleep(1.0)
    assert not [url for url in page.requests if "127.0.0.1:9/" in url]
    assert page.evaluate("() => window.__pwned") is None and page.dialogs == []
    shot(page, "08_document_hostile_inerte")


def test_reindex_reports_with_progress(page: Any) -> None:
    page.get_by_role("tab", name="Corpus").click()
    page.click("#reindex-button")
    page.wait_for_selector("#reindex-status .msg-ok", timeout=120_000)
    report = page.locator("#reindex-status").inner_text()
    assert "L'index est à jour : aucun document n'a changé" in report
    status = page.locator("#status-line").inner_text()
    assert "5 documents" in status  # the uploaded one included
    shot(page, "09_reindexation")


def test_evaluation_tab_runs_a_set_and_shows_the_summary(page: Any, tmp_path: Path) -> None:
    page.get_by_role("tab", name="Évaluation").click()
    lines = (PROJECT_ROOT / "evals" / "qa.jsonl").read_text(encoding="utf-8").splitlines()
    small = tmp_path / "jeu_court.jsonl"
    small.write_text("\n".join(lines[:6]) + "\n", encoding="utf-8")
    page.set_input_files("#eval-upload input[type=file]", str(small))
    time.sleep(1.0)  # let the upload finish before sending
    page.click("#eval-run")
    page.wait_for_selector("#eval-status .msg-ok", timeout=120_000)
    assert "6 questions de « jeu_court.jsonl »" in page.locator("#eval-status").inner_text()
    summary = page.locator("#eval-summary").inner_text()
    assert "mode Recherche" in summary and "hit@5" in summary and "Par type de question" in summary
    assert "Contrôle qualité" in summary
    assert page.locator("#eval-failures").inner_text().strip()  # failures, or « Aucune question en échec »
    reports = page.locator("#eval-reports").inner_text().replace("\n", "")
    assert "report.html" in reports and "report.md" in reports
    shot(page, "10_evaluation")


# -- with a language model ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_app(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, built_index: CorpusIndex
) -> Iterator[Any]:
    """The app with the OpenAI-compatible stand-in as its model: one word every 0.12 s, a
    synthesis of one true sentence (copied from the first quoted passage) and one invented."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium absent (installé par « make test »).")
    from openai_standin import MODEL_ID, OpenAIStandin
    from test_app_api import start_app

    with OpenAIStandin(delay_s=0.12, quote=True) as server:
        model = {
            "ASSISTANT_LLM": "openai",
            "ASSISTANT_OPENAI_BASE_URL": server.base_url,
            "ASSISTANT_OPENAI_MODEL": MODEL_ID,
            "ASSISTANT_OPENAI_API_KEY": "cle-test",
        }
        with start_app(tmp_path_factory.mktemp("app_model"), settings, model) as running:
            running.server = server
            yield running


@pytest.fixture(scope="module")
def model_page(model_app: Any, browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="fr-FR")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(model_app.url)
    page.wait_for_selector("#question textarea")
    yield page
    context.close()


def watch(page: Any, question: str, seconds: float = 60.0) -> list[tuple[float, str]]:
    """Ask ``question`` and read the last answer every 50 ms until it is finished: every text
    the page showed, with its time."""
    before = page.locator("#chat [data-testid='bot']").count()
    page.fill("#question textarea", question)
    started = time.monotonic()
    page.click("#send")
    seen: list[tuple[float, str]] = []
    while time.monotonic() - started < seconds:
        text = page.evaluate(
            """n => {
                const bots = document.querySelectorAll("#chat [data-testid='bot']");
                return bots.length > n ? bots[bots.length - 1].innerText : "";
            }""",
            before,
        )
        if text and (not seen or seen[-1][1] != text):
            seen.append((time.monotonic() - started, text))
        finished = text and not any(s in text for s in ("Recherche des passages", "Synthèse en cours"))
        if finished and not page.evaluate("() => document.querySelector('#send').disabled"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"no finished answer after {seconds} s: {seen[-1:] or 'nothing'}")


def test_the_verbatim_answer_appears_before_the_synthesis_and_nothing_unverified(
    model_page: Any, model_app: Any
) -> None:
    from openai_standin import INVENTED

    seen = watch(model_page, "Combien d'agents compte le CIPEN ?")
    verbatim = next(t for t, text in seen if "mot pour mot" in text)
    synthesis = next(t for t, text in seen if "70 agents" in text.partition("Synthèse (chaque phrase")[2])
    assert verbatim < synthesis, "\n\n=====\n".join(f"{t:.2f}: {x}" for t, x in seen)
    final = seen[-1][1]
    assert "70 agents" in final.split("Synthèse (")[1]  # the verified sentence, with its marker
    assert not any(INVENTED[:30] in text or "2031" in text for _, text in seen)  # never shown
    assert "écartées" in final  # the dropped sentence is said, not shown
    shot(model_page, "10_reponse_puis_synthese")


def test_a_question_outside_the_dossier_shows_no_model_text_at_any_moment(
    model_page: Any, model_app: Any
) -> None:
    asked = len(model_app.server.requests)
    seen = watch(model_page, "Quelle est la recette de la tarte aux pommes ?")
    assert "ne traite pas" in seen[-1][1]
    assert not any("Synthèse" in text or "2031" in text for _, text in seen), seen
    assert len(model_app.server.requests) == asked  # the model was never called
    shot(model_page, "11_hors_dossier_refuse")
