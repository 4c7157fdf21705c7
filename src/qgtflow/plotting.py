"""Drawing helpers shared by the convergence stage and the report: a figure laid out and drawn once, and y ticks in
scientific notation without mathtext (both measured in benchmarks/bench_convergence_plots.py)."""

from __future__ import annotations

import re
from pathlib import Path

_SUPERSCRIPT = str.maketrans("-−0123456789", "⁻⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def save_once(fig, path: Path, dpi: int) -> None:
    """Lay the figure out from its texts' extents (one pass, titles and suptitle included), then draw it
    once; PNG compression level 3 (zlib's 6 costs more CPU for a few % smaller files). The figure has no layout
    engine: one makes savefig draw twice, and the constrained one measures every text twice more."""
    fig.tight_layout()
    fig.set_layout_engine(None)  # tight_layout leaves a placeholder engine, which makes savefig draw twice
    fig.savefig(path, dpi=dpi, pil_kwargs={"compress_level": 3})


def sci_y(ax) -> None:
    """y ticks in scientific notation outside 1e-3 … 1e4 with a '×10⁻⁵' offset text, in plain text:
    ``useMathText=True`` would make every y tick label a mathtext string, parsed by pyparsing at each draw."""
    from matplotlib.ticker import ScalarFormatter

    class _UnicodeSci(ScalarFormatter):
        def get_offset(self):  # plain '1e−6', '+1.5' or '1e−6+1.5' -> '×10⁻⁶…'
            text = super().get_offset()
            sci = re.match(r"1e([-−]?\d+)", text)
            return "×10" + sci.group(1).translate(_SUPERSCRIPT) + text[sci.end():] if sci else text

    fmt = _UnicodeSci(useMathText=False)
    fmt.set_scientific(True)
    fmt.set_powerlimits((-3, 4))
    ax.yaxis.set_major_formatter(fmt)
