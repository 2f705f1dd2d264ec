"""Side-by-side benchmark of the local model: this project's synthesis prompt against the plain
LangChain pipeline's « stuff » prompt, on the same questions, the same model and settings.

    python scripts/bench_llm.py [--runs 1] [--out runs/bench/modele.json]

Each side runs in its own child process (``--side project|baseline``) holding what it needs to
answer: the embedder and its index, and Qwen2.5-Coder-1.5B (``Settings.llm_threads`` threads,
``llm_max_tokens`` tokens at most, for both sides).

- project: the whole answer path (``AnswerPipeline.stream``): the verbatim answer, then the
  synthesis prompt (``answer/synthesis.py``, ``prompts/synthesis_fr.txt``: the quoted lines,
  each cut to its most relevant sentences) and the verification of each sentence; the synthesis
  time limit is lifted so that the whole generation is measured;
- reference: the top 4 chunks of ``BaselinePipeline`` (LangChain's default ``k``) stuffed into
  the prompt a ``RetrievalQA`` « stuff » chain sends a chat model (``CHAT_PROMPT`` of
  langchain-classic), then the model's raw answer.

For each generation: prompt size in tokens, time to the first token, tokens per second after it,
total; every generation starts from an empty KV cache (a new question with new passages). Prints
a French table with the ratio project / reference and the load average, writes the JSON to
``runs/bench/modele.json``. Benchmarks, not tests: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import (
    ROOT,
    SIDES,
    header,
    load_average,
    run_side,
    save,
    table,
    write_result,
)

# A factual question, a paraphrase and a comparison, each one the project sends to the model
# (not a listing, a request for quotes or a refusal, which it answers without the model).
QUESTIONS = (
    "Quelles sont les principales activités du CMA aujourd'hui, et qui le finance ?",
    "Dans l'hypothèse du centre de valorisation RH, craint-on de voir s'évaporer du savoir-faire "
    "si des agents s'en vont bientôt ?",
    "Quelle est la position de chaque scénario sur la gouvernance ?",
)
STUFF_K = 4  # what ``as_retriever()`` hands to a « stuff » chain by default
NO_LIMIT_S = 600.0


class TimedModel:
    """The chat model, timing each generation it streams: start, first and last piece, text.

    Each generation starts from an empty KV cache, as a new question with new passages does."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.client = model.client
        self.runs: list[dict[str, Any]] = []

    def prompt_tokens(self, messages: list[Any]) -> int:
        """Tokens of the messages' text (the chat template adds a few per message)."""
        return sum(len(self.client.tokenize(str(m.content).encode(), add_bos=False)) for m in messages)

    def stream(self, messages: list[Any], **kwargs: Any) -> Iterator[Any]:
        self.client.reset()
        started = time.perf_counter()
        first = last = None
        text = ""
        for chunk in self.model.stream(messages, **kwargs):
            if chunk.text:
                last = time.perf_counter()
                first = first or last
                text += chunk.text
            yield chunk
        tokens = len(self.client.tokenize(text.encode(), add_bos=False)) if text else 0
        self.runs.append(
            {
                "prompt_tokens": self.prompt_tokens(messages),
                "first_token_s": None if first is None else round(first - started, 2),
                "generated_tokens": tokens,
                "tokens_per_s": round((tokens - 1) / (last - first), 1)
                if first is not None and last is not None and tokens > 1 and last > first
                else None,
                "total_s": None if last is None else round(last - started, 2),
                "text": " ".join(text.split())[:400],
            }
        )


def load_model(settings: Any) -> tuple[TimedModel, float]:
    from langchain_core.messages import HumanMessage

    from assistant.answer.llm import build_chat_model

    started = time.perf_counter()
    model, status = build_chat_model(settings)
    if model is None:
        raise SystemExit(f"Modèle local indisponible : {status}")
    load_s = time.perf_counter() - started
    timed = TimedModel(model)
    for _ in timed.stream([HumanMessage("Bonjour")]):  # pages the weights in, not measured
        break
    timed.runs.clear()
    return timed, load_s


def project_side(runs: int) -> dict[str, Any]:
    from assistant.answer.pipeline import AnswerPipeline, VerbatimEvent
    from assistant.search.index import CorpusIndex
    from assistant.search.retrieval import Retriever
    from assistant.settings import Settings

    settings = Settings.from_env().replace(llm="local", llm_timeout_s=NO_LIMIT_S)
    index = CorpusIndex(settings)
    if index.ensure() is not None:
        print(f"Index construit dans {settings.index_dir} (il manquait ou n'était pas à jour).", flush=True)
    model, load_s = load_model(settings)
    pipeline = AnswerPipeline(settings, Retriever(index, settings), model)
    pipeline.retriever.search(QUESTIONS[0])  # warm-up: first-call costs are not what users wait for
    answers = []
    for _ in range(runs):
        for question in QUESTIONS:
            started = time.perf_counter()
            generations = len(model.runs)
            verbatim_s = None
            for event in pipeline.stream(question):
                if isinstance(event, VerbatimEvent):
                    verbatim_s = time.perf_counter() - started
            answers.append(
                {
                    "question": question,
                    "verbatim_s": None if verbatim_s is None else round(verbatim_s, 2),
                    "answer_s": round(time.perf_counter() - started, 2),
                    "model_called": len(model.runs) > generations,
                }
            )
            print(f"{answers[-1]} {model.runs[-1] if answers[-1]['model_called'] else ''}", flush=True)
    return {"model_load_s": round(load_s, 2), "answers": answers, "generations": model.runs}


def baseline_side(runs: int) -> dict[str, Any]:
    from langchain_classic.chains.question_answering.stuff_prompt import CHAT_PROMPT

    from assistant.evaluation.evaluate import baseline_documents
    from assistant.evaluation.runner import BaselinePipeline
    from assistant.search.embeddings import build_embeddings
    from assistant.settings import Settings

    settings = Settings.from_env().replace(llm="local")
    reference = BaselinePipeline(baseline_documents(settings.corpus_dir), build_embeddings(settings))
    model, load_s = load_model(settings)
    answers = []
    for _ in range(runs):
        for question in QUESTIONS:
            started = time.perf_counter()
            chunks = reference.store.similarity_search(question, k=STUFF_K)
            context = "\n\n".join(d.page_content for d in chunks)
            for _chunk in model.stream(CHAT_PROMPT.format_messages(context=context, question=question)):
                pass
            answers.append(
                {
                    "question": question,
                    "answer_s": round(time.perf_counter() - started, 2),
                    "model_called": True,
                }
            )
            print(f"{answers[-1]} {model.runs[-1]}", flush=True)
    return {"model_load_s": round(load_s, 2), "answers": answers, "generations": model.runs}


def median(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def rows(sides: dict[str, dict[str, Any]]) -> list[tuple[str, float | None, float | None, int]]:
    def both(key: str, source: str = "generations") -> tuple[float | None, float | None]:
        p, b = ([g.get(key) for g in sides[s][source]] for s in SIDES)
        return median(p), median(b)

    return [
        (
            "chargement du modèle de langage (s)",
            sides["project"]["model_load_s"],
            sides["baseline"]["model_load_s"],
            1,
        ),
        ("taille de l'invite (jetons)", *both("prompt_tokens"), 0),
        ("premier jeton (s)", *both("first_token_s"), 1),
        ("vitesse de génération (jetons/s)", *both("tokens_per_s"), 1),
        ("jetons générés", *both("generated_tokens"), 0),
        ("génération entière (s)", *both("total_s"), 1),
        ("réponse complète, recherche comprise (s)", *both("answer_s", "answers"), 1),
        (
            "mémoire de pointe du processus (Mo)",
            sides["project"]["peak_rss_mb"],
            sides["baseline"]["peak_rss_mb"],
            0,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="passages sur les 3 questions (défaut : 1)")
    parser.add_argument(
        "--out", type=Path, default=None, help="fichier JSON (défaut : runs/bench/modele.json)"
    )
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        out = project_side(args.runs) if args.side == "project" else baseline_side(args.runs)
        out["load_average_end"] = load_average()
        write_result(out, args.result)
        return 0

    info = header(f"python scripts/bench_llm.py --runs {args.runs}")
    sides = {side: run_side(Path(__file__), side, ["--runs", str(args.runs)]) for side in SIDES}
    info["load_average_end"] = load_average()
    count = len(sides["project"]["generations"])
    print(
        f"\nModèle local (Qwen2.5-Coder-1.5B), médianes de {count} générations ({len(QUESTIONS)} questions "
        f"× {args.runs}) ; projet = invite de synthèse des lignes citées, référence = les "
        f"{STUFF_K} premiers morceaux dans l'invite « stuff » de RetrievalQA ; rapport = projet / "
        "référence.\n"
    )
    print(table(rows(sides)))
    skipped = sum(1 for a in sides["project"]["answers"] if not a["model_called"])
    if skipped:
        print(f"\n{skipped} question(s) sans appel au modèle côté projet (refus, liste ou citations).")
    print(
        "Charge de la machine à la fin (1, 5, 15 min) : "
        + ", ".join(f"{x:.2f}".replace(".", ",") for x in info["load_average_end"])
    )
    path = save("modele", info | {"questions": list(QUESTIONS), "sides": sides}, args.out)
    print(f"Résultats : {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
