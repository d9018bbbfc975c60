"""Every Param and Flops entry of the paper (Tables I and V-VII, 47 distinct) beside this project's
count of the paper's dataset configs (``python -m lkca_jax count`` on each), as a Markdown table; the
LKCA rows also without the upsampler's extra vector (``model.up_extra none``).

    python recipes/paper_counts.py            # from the repository root; seconds, nothing is computed
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lkca_jax import paper  # noqa: E402
from lkca_jax.accounting import count_config  # noqa: E402
from lkca_jax.config import load_config  # noqa: E402
from lkca_jax.methods import METHODS  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]

print("| Dataset | Scale | Method | Param (ours) | Param (paper) | without the extra vector | Flops (ours) "
      "| Flops (paper) |")
print("|---|---|---|---|---|---|---|---|")
order = lambda kv: (kv[0][0], kv[0][1], list(METHODS).index(kv[0][2]), kv[0][3])
for (d, s, m, depth), (pp, pf) in sorted(paper.count_entries().items(), key=order):
    c = load_config(f"{ROOT}/configs/{d}.py:x{s},{m}")
    if m == "net":
        c.model.depth = depth
    n = count_config(c)
    extra = ""
    if m in ("net", "lr"):
        c.model.up_extra = "none"
        extra = f"{count_config(c)['params'] / 1e6:.3f}M"
    dec = len(pf.partition(".")[2])
    name = METHODS[m].display + (f", {depth} LKBs" if m == "net" and depth != 16 else "")
    print(f"| {d} | x{s} | {name} | {n['params'] / 1e6:.3f}M | {pp}M | {extra or '-'} | "
          f"{n['macs'] / 1e9:.{dec}f}G | {pf}G |")
