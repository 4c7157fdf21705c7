"""Static HTML report: per-study convergence summary and plots, plus configured cross-study figures.

``build_report(config, results_dir, out_html)`` writes ``out_html`` and, next to it, a folder
``<stem>_files/`` with every image (copied convergence plots and the cross-study figures),
linked relatively: the page and its folder can be moved together and opened offline.

Expected layout under ``results_dir`` (from the workflow):

- ``{study}/convergence/convergence.csv``, ``convergence.zarr`` and ``*.png`` (convergence stage);
- ``{study}/n{N}/responses.zarr`` for each grid size N (reduce stage).

Nothing missing is fatal: a missing study, store or plot becomes a visible note in the page.
"""

from qgtflow.report.page import build_report

__all__ = ["build_report"]
