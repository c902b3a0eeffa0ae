"""Evaluation: clinical keyword F1, NLG metrics, bootstrap statistics, diagnostics, scoring."""
