"""The local model as a helper of retrieval and refusal, measured on a question set (never used
by the assistant unless these figures say it helps).

    python scripts/eval_model_assist.py judge evals/qa.jsonl [--answerable 40] [--top 3]
    python scripts/eval_model_assist.py rewrite evals/qa.jsonl

``judge``: for each unanswerable question and ``--answerable`` answerable ones (paraphrases,
facts and follow-ups, drawn with a fixed seed), the local model (Qwen2.5-Coder-1.5B, llama.cpp)
reads each of the ``--top`` first retrieved passages and says whether it answers the question;
the score is P(« oui ») / (P(« oui ») + P(« non »)) on its first answer token. Printed: how well
its best score separates answerable from unanswerable questions (AUC, refusals and false
refusals at several thresholds, and for the questions the assistant's own rules do not
refuse), and hit@1 when its scores reorder the first passages (alone, or added to the
retriever's rank).

``rewrite``: each answerable follow-up (a question with a conversation) is rewritten by the
model as a standalone question; the rewrite is searched too, fused with the usual searches at
several weights, or used only when its first passages agree with the usual ones. Printed:
hit@5 and mrr@10 over those follow-ups for each variant, and the model's time per rewrite.

Both need the local model (``make install-dev`` installs it); on 2 cores, about 6 s per question.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.answer.extractive import excerpt, topic_terms  # noqa: E402
from assistant.answer.model_files import ensure_local_model  # noqa: E402
from assistant.evaluation.dataset import Case, load_cases  # noqa: E402
from assistant.evaluation.metrics import relevant, retrieval_metrics  # noqa: E402
from assistant.evaluation.replay import ConversationReplay  # noqa: E402
from assistant.service import Assistant  # noqa: E402
from assistant.settings import Settings  # noqa: E402

JUDGE_PROMPT = (
    "<|im_start|>system\nTu juges si un extrait de dossier répond à une question.<|im_end|>\n"
    "<|im_start|>user\nQuestion : {question}\n\nExtrait : {passage}\n\n"
    "Cet extrait donne-t-il la réponse à la question ? Réponds seulement par oui ou par non.<|im_end|>\n"
    "<|im_start|>assistant\n"
)
REWRITE_PROMPT = (
    "<|im_start|>system\nTu réécris la dernière question d'une conversation pour qu'elle se "
    "comprenne seule, sans y répondre.<|im_end|>\n"
    "<|im_start|>user\nConversation :\n{conversation}\n\nDernière question : {question}\n\n"
    "Écris la dernière question complétée, en une phrase, sans rien d'autre.<|im_end|>\n"
    "<|im_start|>assistant\n"
)


def load_model(settings: Settings) -> Any:
    from llama_cpp import Llama

    from assistant.answer.llm import safe_llama_loading

    path = ensure_local_model(settings)
    with safe_llama_loading():
        return Llama(model_path=str(path), n_ctx=1024, n_threads=2, n_batch=256, verbose=False)


def first_token_ids(model: Any, words: Sequence[str]) -> list[int]:
    return [model.tokenize(w.encode(), add_bos=False, special=False)[0] for w in words]


def judge_score(model: Any, question: str, passage: str, yes: list[int], no: list[int]) -> float:
    tokens = model.tokenize(
        JUDGE_PROMPT.format(question=question, passage=passage).encode(), add_bos=False, special=True
    )
    model.reset()
    model.eval(tokens)
    logits = np.ctypeslib.as_array(model._ctx.get_logits(), shape=(model.n_vocab(),)).astype(np.float64)
    probs = np.exp(logits - logits.max())
    p_yes, p_no = probs[yes].sum(), probs[no].sum()
    return float(p_yes / (p_yes + p_no + 1e-12))


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives]
    return float(np.mean(pairs)) if pairs else 0.0


def run_judge(assistant: Assistant, model: Any, cases: list[Case], answerable: int, top: int) -> None:
    pipeline = assistant.pipeline
    replay = ConversationReplay(pipeline)
    rng = random.Random(1)
    pool = [c for c in cases if c.answerable and c.kind in ("paraphrase", "fact", "multiturn")]
    rng.shuffle(pool)
    chosen = [c for c in cases if not c.answerable] + pool[:answerable]
    yes, no = first_token_ids(model, ("oui", "Oui")), first_token_ids(model, ("non", "Non"))
    records: list[dict[str, Any]] = []
    started = time.perf_counter()
    for number, case in enumerate(chosen, start=1):
        history = replay.exchanges(case.history)
        found = pipeline.retriever.search(case.question, history)
        question = found.intent.standalone
        wanted = topic_terms(question)
        head = found.passages[:top]
        scores = [judge_score(model, question, f"{p.label}\n{excerpt(p, wanted)}", yes, no) for p in head]
        refused = pipeline.answer(case.question, history=history).refused
        records.append(
            {
                "case": case,
                "scores": scores,
                "relevant": [case.answerable and relevant(p.text, case.evidence) for p in head],
                "refused_by_rules": refused,
            }
        )
        print(f"  {number}/{len(chosen)} {case.id} {[round(s, 2) for s in scores]}", file=sys.stderr)
    seconds = (time.perf_counter() - started) / max(len(chosen), 1)

    best = {id(r): max(r["scores"]) for r in records}
    ans = [r for r in records if r["case"].answerable]
    una = [r for r in records if not r["case"].answerable]
    print(
        f"Juge : {len(una)} questions sans réponse, {len(ans)} avec réponse, {top} passages lus, "
        f"{seconds:.1f} s par question"
    )
    separation = auc([best[id(r)] for r in ans], [best[id(r)] for r in una])
    print(f"AUC (meilleur score, avec réponse > sans réponse) : {separation:.3f}")
    left = [r for r in una if not r["refused_by_rules"]]
    print("seuil | refus (sans réponse) | refus à tort | refus de plus parmi celles que les règles laissent")
    for threshold in (0.1, 0.15, 0.2, 0.25, 0.3, 0.4):
        refused = np.mean([best[id(r)] < threshold for r in una])
        wrong = np.mean([best[id(r)] < threshold for r in ans])
        extra = sum(best[id(r)] < threshold for r in left)
        print(f"{threshold:5.2f} | {refused:.3f} | {wrong:.3f} | {extra} sur {len(left)}")
    hit1 = np.mean([r["relevant"][0] for r in ans])
    print(f"hit@1 des {len(ans)} questions avec réponse : ordre de la recherche {hit1:.3f}", end="")
    for weight in (0.0, 0.1, 0.2, 0.3):
        reordered = np.mean(
            [
                r["relevant"][max(range(len(r["scores"])), key=lambda i: r["scores"][i] + weight / (1 + i))]
                for r in ans
            ]
        )
        print(f" ; juge + {weight} × rang {reordered:.3f}", end="")
    print()


def run_rewrite(assistant: Assistant, model: Any, cases: list[Case]) -> None:
    pipeline = assistant.pipeline
    retriever = pipeline.retriever
    replay = ConversationReplay(pipeline)
    follow_ups = [c for c in cases if c.answerable and c.history]
    rewrites: dict[str, str] = {}
    times = []
    for case in follow_ups:
        turns = [
            f"{'Question' if m['role'] == 'user' else 'Réponse'} : {m['content']}" for m in case.history[-4:]
        ]
        prompt = REWRITE_PROMPT.format(conversation="\n".join(turns), question=case.question)
        started = time.perf_counter()
        out = model.create_completion(prompt, max_tokens=60, temperature=0.0, stop=["<|im_end|>", "\n"])
        times.append(time.perf_counter() - started)
        rewrites[case.id] = out["choices"][0]["text"].strip() or case.question
        print(f"  {case.id} {case.question} → {rewrites[case.id]}", file=sys.stderr)

    original_queries = retriever.queries
    variants: list[tuple[str, float, bool]] = [("usuel", 0.0, False)]
    variants += [(f"réécriture fusionnée, poids {w}", w, False) for w in (0.5, 1.0, 2.0)]
    variants += [("réécriture gardée si ses 3 premiers croisent les 3 usuels, poids 1", 1.0, True)]
    print(
        f"Réécriture par le modèle local : {len(follow_ups)} relances avec réponse, "
        f"{np.median(times):.1f} s par réécriture (médiane), {np.percentile(times, 95):.1f} s (p95)"
    )
    for name, weight, agree in variants:
        totals = {"hit@5": 0.0, "mrr@10": 0.0}
        for case in follow_ups:
            history = replay.exchanges(case.history)
            rewrite = rewrites[case.id]
            use = weight > 0
            if use and agree:
                usual = {p.chunk_id for p in retriever.search(case.question, history).passages[:3]}
                alone = {p.chunk_id for p in retriever.search(rewrite).passages[:3]}
                use = bool(usual & alone)

            def queries(intent: Any, rewrite: str = rewrite, weight: float = weight, use: bool = use) -> Any:
                found = original_queries(intent)
                return [*found, (rewrite, weight)] if use else found

            retriever.queries = queries  # type: ignore[method-assign]
            try:
                passages = retriever.search(case.question, history).passages
            finally:
                retriever.queries = original_queries  # type: ignore[method-assign]
            metrics = retrieval_metrics([p.text for p in passages], case.evidence)
            for key in totals:
                totals[key] += metrics[key]
        count = max(len(follow_ups), 1)
        print(f"  {name} : hit@5 {totals['hit@5'] / count:.3f}, mrr@10 {totals['mrr@10'] / count:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("judge", "rewrite"))
    parser.add_argument("questions", type=Path)
    parser.add_argument("--answerable", type=int, default=40, help="questions avec réponse lues par le juge")
    parser.add_argument("--top", type=int, default=3, help="passages lus par le juge")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    assistant = Assistant.open(settings, with_model=False)
    model = load_model(settings)
    cases = load_cases(args.questions)
    if args.mode == "judge":
        run_judge(assistant, model, cases, args.answerable, args.top)
    else:
        run_rewrite(assistant, model, cases)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
