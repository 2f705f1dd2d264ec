"""Evaluation: question sets, metrics, runs, reports, run comparison, the quality gate and users' feedback.

Drives the assistant through its public names only; imported by the app and the CLI, which run
a set through ``evaluate.run_set`` (so does ``scripts/eval_llm.py``).
"""
