"""Export EmbeddingGemma-300m to ONNX once, checked against the torch model (``make install``).

    python scripts/export_embedder.py [--model .cache/models/embeddinggemma-300m] [--force] [--strict]

The export (``assistant/search/onnx_model.py``) takes ~60 s and ~2.8 GB of memory on 2 cores, the
first time; afterwards, while the weights and the libraries it was made with are unchanged, a read
of its marker (~0.1 s). Without an export the assistant still works, on torch, about twice as slow
to encode a question: a failed export is a warning (exit 0) unless ``--strict`` (the tests' install,
which tests the export) makes it an error (exit 1). Then the 8-bit graph for questions asked while
others are being encoded (``quantize_for_queries``, ~45 s the first time); without it, every
question is encoded in float32: a warning too, unless ``--strict``. Messages in French.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.search.onnx_model import (  # noqa: E402
    OnnxExportError,
    export_model,
    exported,
    quantize_for_queries,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Exporte EmbeddingGemma-300m en ONNX, vérifié.")
    parser.add_argument(
        "--model", default=str(ROOT / ".cache/models/embeddinggemma-300m"), help="dossier du modèle"
    )
    parser.add_argument(
        "--force", action="store_true", help="exporter de nouveau même si l'export est à jour"
    )
    parser.add_argument("--strict", action="store_true", help="un échec de l'export est une erreur (code 1)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        report = export_model(
            args.model,
            force=args.force,
            announce=lambda: print(
                "Export ONNX d'EmbeddingGemma (une seule fois, ~1 min sur 2 cœurs)…", flush=True
            ),
        )
    except KeyboardInterrupt:
        print("Interrompu : export abandonné, rien d'écrit.", file=sys.stderr)
        return 130
    except (OnnxExportError, OSError, RuntimeError, ImportError) as exc:
        message = (
            exc
            if isinstance(exc, OnnxExportError)
            else f"l'export ONNX a échoué ({type(exc).__name__} : {exc})"
        )
        print(f"{'Erreur' if args.strict else 'Avertissement'} : {message}", file=sys.stderr, flush=True)
        if not args.strict and not exported(args.model):
            print(
                "L'assistant fonctionnera avec PyTorch (questions encodées environ deux fois plus lentement)."
            )
        return 1 if args.strict else 0
    if report.reused:
        print(f"Export ONNX d'EmbeddingGemma déjà présent et vérifié ({report.folder}).")
    else:
        print(
            f"Export ONNX d'EmbeddingGemma prêt dans {report.folder} "
            f"({time.perf_counter() - started:.0f} s ; "
            f"mêmes vecteurs que le modèle d'origine : cosinus {report.min_cosine:.6f})."
        )
    return _quantize(args)


def _quantize(args: argparse.Namespace) -> int:
    """The 8-bit graph for questions, from the export just checked."""
    started = time.perf_counter()
    try:
        report = quantize_for_queries(args.model, force=args.force)
    except KeyboardInterrupt:
        print("Interrompu : version 8 bits abandonnée, rien d'écrit.", file=sys.stderr)
        return 130
    except (OnnxExportError, OSError, RuntimeError, ImportError, ValueError) as exc:
        message = (
            exc
            if isinstance(exc, OnnxExportError)
            else f"la version 8 bits des questions a échoué ({type(exc).__name__} : {exc})"
        )
        print(f"{'Erreur' if args.strict else 'Avertissement'} : {message}", file=sys.stderr, flush=True)
        if not args.strict:
            print("Les questions seront toutes calculées en float32 (un peu plus lentement sous charge).")
        return 1 if args.strict else 0
    if not report.reused:
        print(
            f"Version 8 bits d'EmbeddingGemma pour les questions prête dans {report.folder} "
            f"({time.perf_counter() - started:.0f} s ; cosinus {report.min_cosine:.4f} avec le float32)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
