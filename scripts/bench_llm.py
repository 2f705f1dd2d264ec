"""Benchmark the local LLM on a realistic answer prompt: load time, time to first token, speed.

The prompt is the one the assistant sends: the French system prompt and user template of
``assistant/prompts``, five passages of ~80 words taken from the corpus, and a question. Each
run starts from an empty KV cache (no prefix reuse), as a new question with new passages does.

    python scripts/bench_llm.py [--runs 2] [--threads 2] [--max-tokens 320]

Prints figures in French. The machine's load average is printed too: on 2 cores, any other
busy process halves the figures.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from langchain_core.messages import HumanMessage, SystemMessage  # noqa: E402

from assistant.answer.llm import build_chat_model  # noqa: E402
from assistant.settings import Settings  # noqa: E402

QUESTION = "Quelles sont les principales activités du CMA aujourd'hui, et qui le finance ?"
PASSAGE_WORDS = 80
FALLBACK_SYSTEM = (
    "Réponds en français, uniquement à partir des passages du dossier fournis. Après chaque phrase, "
    "indique entre crochets le numéro du passage qui la justifie. Si les passages ne répondent pas, "
    "écris : « Le dossier ne traite pas de … »."
)
FALLBACK_USER = "<passages>\n{passages}\n</passages>\n\nQuestion : {question}"


def corpus_passages(count: int = 5) -> list[tuple[str, str]]:
    """``count`` prose paragraphs of the corpus, cut to ~80 words, from as many files as possible."""
    found: list[tuple[str, str]] = []
    files = sorted((ROOT / "corpus").glob("*.md"))
    per_file: list[list[tuple[str, str]]] = []
    for path in files:
        body = re.sub(r"\A---\n.*?\n---\n", "", path.read_text(encoding="utf-8"), flags=re.S)
        paragraphs = [p.strip() for p in body.split("\n\n")]
        prose = [p for p in paragraphs if not p.startswith(("#", "|", "-")) and len(p.split()) >= 50]
        per_file.append([(path.stem, " ".join(p.split()[:PASSAGE_WORDS])) for p in prose])
    while len(found) < count and any(per_file):
        for items in per_file:
            if items and len(found) < count:
                found.append(items.pop(0))
    if len(found) < count:
        raise SystemExit("Le corpus ne contient pas assez de paragraphes pour le banc d'essai.")
    return found


def build_messages() -> list:
    prompts = ROOT / "assistant" / "prompts"
    system = (
        (prompts / "synthesis_fr.txt").read_text(encoding="utf-8").strip()
        if prompts.exists()
        else FALLBACK_SYSTEM
    )
    user = (
        (prompts / "answer_user_fr.txt").read_text(encoding="utf-8").strip()
        if prompts.exists()
        else FALLBACK_USER
    )
    blocks = [
        f'<passage n="{n}" source="{source}">\n{text}\n</passage>'
        for n, (source, text) in enumerate(corpus_passages(), start=1)
    ]
    return [SystemMessage(system), HumanMessage(user.format(passages="\n".join(blocks), question=QUESTION))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=None)
    args = parser.parse_args()
    settings = Settings.from_env().replace(
        llm="local", llm_threads=args.threads, llm_max_tokens=args.max_tokens
    )

    print(f"Charge de la machine (1, 5, 15 min) : {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    started = time.perf_counter()
    model, status = build_chat_model(settings)
    load_s = time.perf_counter() - started
    print(f"Modèle : {status}")
    print(f"Chargement : {load_s:.1f} s ({settings.llm_threads} fils, contexte {settings.llm_context})")

    messages = build_messages()
    client = model.client
    words = sum(len(m.content.split()) for m in messages)
    prompt_tokens = sum(len(client.tokenize(m.content.encode(), add_bos=False)) for m in messages)
    print(f"Invite : {words} mots, ~{prompt_tokens} jetons (hors balises du modèle de conversation)")

    for run in range(1, args.runs + 1):
        client.reset()  # no reuse of the previous run's prompt
        t0 = time.perf_counter()
        first = last = None
        text = ""
        for chunk in model.stream(messages):
            if chunk.text:
                last = time.perf_counter()
                first = first or last
                text += chunk.text
        if first is None or last is None:
            print(f"Essai {run} : aucune réponse.")
            continue
        out_tokens = len(client.tokenize(text.encode(), add_bos=False))
        speed = (out_tokens - 1) / (last - first) if out_tokens > 1 and last > first else float("nan")
        print(
            f"Essai {run} : premier jeton après {first - t0:.1f} s "
            f"(lecture de l'invite ~{prompt_tokens / (first - t0):.0f} jetons/s) ; "
            f"{out_tokens} jetons générés à {speed:.1f} jetons/s ; total {last - t0:.1f} s"
        )
        if run == 1:
            print("Réponse :", " ".join(text.split())[:600])
    print(f"Charge de la machine (1, 5, 15 min) : {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
