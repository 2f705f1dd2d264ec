"""Probe EmbeddingGemma-300m on CPU: load time, latency, throughput, memory, prompts, a sanity check.

    HF_HUB_OFFLINE=1 python scripts/probe_embedder.py [--model .cache/models/embeddinggemma-300m]
        [--threads 2] [--queries evals/qa.jsonl]

Needs the ``st`` extra (sentence-transformers, torch) and the model folder written by
``scripts/fetch_embedder.py``. Queries: the first 50 questions of the development set; passages:
100 windows of the corpus of ~150 tokens each, titled ``document › section``. Prints figures and
asserts nothing; it imports nothing from the ``assistant`` package.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse
import inspect
import json
import re
import resource
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO_ROOT / ".cache/models/embeddinggemma-300m"

# Paraphrase pairs (no shared content word between question and passage, on purpose).
SANITY = [
    (
        "Combien de personnes travaillent dans l'équipe ?",
        "Le centre compte aujourd'hui onze agents, dont quatre ingénieurs pédagogiques et deux développeurs.",
    ),
    (
        "Quand le rapport doit-il être rendu ?",
        "La note finale est attendue pour la mi-octobre, avant l'arbitrage de la secrétaire générale.",
    ),
    (
        "Quels risques pèsent sur le financement ?",
        "Les crédits ne sont garantis que pour un an ; au-delà, le budget dépendra "
        "d'une convention encore à signer.",
    ),
]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def load_questions(path: Path, n: int) -> list[str]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row["question"] for row in rows[:n]]


def corpus_passages(corpus: Path, tokenizer, n: int, target_tokens: int) -> list[tuple[str, str]]:
    """(title, passage) windows of ~target_tokens tokens over the corpus's sections."""
    sections: list[tuple[str, str]] = []
    for path in sorted(corpus.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.DOTALL)
        doc, section, body = path.stem, "", []
        for line in [*text.splitlines(), "## "]:
            if line.startswith("# "):
                doc = line[2:].strip()
            elif line.startswith("#"):
                if body:
                    sections.append((f"{doc} › {section}" if section else doc, " ".join(body)))
                section, body = line.lstrip("#").strip(), []
            elif line.strip():
                body.append(line.strip())

    def build(words_per_window: int) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        stride = max(words_per_window * 2 // 3, 1)
        for title, body in sections:
            words = body.split()
            for start in range(0, max(len(words) - words_per_window // 2, 1), stride):
                out.append((title, " ".join(words[start : start + words_per_window])))
        return out

    # Measure tokens per word on a first pass, then size the windows to ~target_tokens.
    first = build(100)
    full = [p for _, p in first if len(p.split()) == 100] or [p for _, p in first]
    per_word = statistics.mean(len(tokenizer(p)["input_ids"]) / len(p.split()) for p in full)
    windows = build(max(round(target_tokens / per_word), 10))
    windows = [w for w in windows if len(w[1].split()) >= 0.8 * target_tokens / per_word] or windows
    while len(windows) < n:  # the corpus is small: cycle through it again
        windows += windows[: n - len(windows)]
    windows = windows[:n]
    return windows


def time_queries(model, questions: list[str], truncate_dim: int | None) -> tuple[float, float, float, int]:
    """p50, p95 (wall ms) and mean process CPU ms per query."""
    kwargs = {} if truncate_dim is None else {"truncate_dim": truncate_dim}
    for q in questions[:3]:  # warm-up
        model.encode_query(q, **kwargs)
    latencies, cpu_ms = [], []
    dim = 0
    for q in questions:
        t, c = time.perf_counter(), time.process_time()
        vec = model.encode_query(q, **kwargs)
        latencies.append((time.perf_counter() - t) * 1000)
        cpu_ms.append((time.process_time() - c) * 1000)
        dim = int(vec.shape[-1])
    return percentile(latencies, 50), percentile(latencies, 95), statistics.mean(cpu_ms), dim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--queries", default=str(REPO_ROOT / "evals/qa.jsonl"))
    parser.add_argument("--corpus", default=str(REPO_ROOT / "corpus"))
    parser.add_argument(
        "--batch-sizes", default="32", type=lambda v: [int(x) for x in v.split(",")], help="e.g. 32,8"
    )
    args = parser.parse_args()

    t = time.perf_counter()
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    import_s = time.perf_counter() - t
    torch.set_num_threads(args.threads)
    print(f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, HF_HUB_OFFLINE={os.environ['HF_HUB_OFFLINE']}")  # fmt: skip
    print(f"Import: {import_s:.1f} s; load average at start: {os.getloadavg()[0]:.2f}")

    t = time.perf_counter()
    model = SentenceTransformer(args.model, device="cpu")
    load_s = time.perf_counter() - t
    print(f"Load: {load_s:.1f} s; peak RSS after load: {rss_mb():.0f} MB")
    print(f"Dimension: {model.get_embedding_dimension()}; max_seq_length: {model.max_seq_length}; "
          f"similarity: {model.similarity_fn_name}; dtype: {next(model.parameters()).dtype}; "
          f"attention: {model[0].auto_model.config._attn_implementation}")  # fmt: skip
    print(f"default_prompt_name: {model.default_prompt_name!r}")
    print("prompts:", json.dumps(model.prompts, ensure_ascii=False, indent=1))

    # --- Prompt plumbing: what encode_document accepts -----------------------------------------
    sig = inspect.signature(model.encode_document)
    print(f"encode_document params: {', '.join(sig.parameters)}")
    title, text = "Scénario CMVRH › Opportunités", "Le CMA rejoindrait un réseau de onze centres."
    manual = f"title: {title} | text: {text}"
    ref = model.encode_document(manual, prompt="", convert_to_tensor=True)
    via_prompt = model.encode_document(text, prompt=f"title: {title} | text: ", convert_to_tensor=True)
    default_doc = model.encode_document(text, convert_to_tensor=True)
    none_manual = model.encode(f"title: none | text: {text}", prompt="", convert_to_tensor=True)
    print("encode_document(P, prompt='title: T | text: ') == "
          "encode_document('title: T | text: P', prompt=''):",
          bool(torch.allclose(ref, via_prompt, atol=1e-5)))  # fmt: skip
    print("encode_document() default == 'title: none | text: P':",
          bool(torch.allclose(default_doc, none_manual, atol=1e-5)))  # fmt: skip
    try:
        model.encode_document(text, prompt_name="Retrieval-document")
        print(
            "prompt_name='Retrieval-document' accepted (a fixed 'title: none' prompt; a title needs prompt=)"
        )
    except Exception as exc:  # report, do not stop the probe
        print(f"prompt_name='Retrieval-document' refused: {exc}")
    q = model.encode_query("Quels partenariats le rattachement permettrait-il ?", convert_to_tensor=True)
    print(f"cos(query, doc with title) {float(model.similarity(q, via_prompt)):.3f} vs "
          f"cos(query, doc title none) {float(model.similarity(q, default_doc)):.3f}")  # fmt: skip

    # --- Query latency, warm, one query per call -----------------------------------------------
    questions = load_questions(Path(args.queries), 50)
    print(f"\nQuery latency, encode_query, {len(questions)} French questions, one per call, warm:")
    for truncate_dim in (None, 512, 256):
        p50, p95, cpu, dim = time_queries(model, questions, truncate_dim)
        print(f"  dim {dim}: p50 {p50:.1f} ms, p95 {p95:.1f} ms (mean process CPU {cpu:.0f} ms per query)")

    # --- Passage throughput --------------------------------------------------------------------
    passages = corpus_passages(Path(args.corpus), model.tokenizer, 100, 150)
    lengths = [len(model.tokenizer(p)["input_ids"]) for _, p in passages]
    print(f"\nPassages: {len(passages)}, tokens each: mean {statistics.mean(lengths):.0f}, "
          f"min {min(lengths)}, max {max(lengths)}")  # fmt: skip
    model.encode_document([p for _, p in passages[:4]])  # warm-up
    runs = [(f"encode_document, batch {b}", [p for _, p in passages], None, b) for b in args.batch_sizes]
    titled = [f"title: {title} | text: {p}" for title, p in passages]
    runs.append(("encode_document, per-passage titles (prompt=''), batch 32", titled, "", 32))
    for label, texts, prompt, batch_size in runs:
        wall, cpu = time.perf_counter(), time.process_time()
        model.encode_document(texts, prompt=prompt, batch_size=batch_size)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        # CPU time / threads: what the wall time would be with the cores to ourselves.
        print(
            f"  {label}: {len(texts) / wall:.1f} passages/s ({wall:.1f} s wall; CPU {cpu:.1f} s, "
            f"i.e. {len(texts) / (cpu / args.threads):.1f} passages/s if uncontended)"
        )

    # --- Sanity check ----------------------------------------------------------------------------
    print("\nSanity check (cosine, rows = queries, columns = passages; diagonal should win):")
    qv = model.encode_query([q for q, _ in SANITY], convert_to_tensor=True)
    dv = model.encode_document([p for _, p in SANITY], convert_to_tensor=True)
    sims = model.similarity(qv, dv)
    ok = 0
    for i, (query, _) in enumerate(SANITY):
        row = [float(x) for x in sims[i]]
        best = max(range(len(row)), key=row.__getitem__)
        ok += best == i
        print(
            f"  {query[:45]:45s} " + "  ".join(f"{x:.3f}" for x in row) + ("  ok" if best == i else "  MISS")
        )
    print(f"  {ok}/{len(SANITY)} ranked first")

    print(f"\nPeak RSS: {rss_mb():.0f} MB; load average at end: {os.getloadavg()[0]:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
