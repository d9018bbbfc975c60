"""The paper's printed numbers, Tables I-VII, as data: ``paper_tables.csv`` beside this file.

One row per printed row: ``table`` (I-VII), ``dataset``, ``scale``, ``method`` (a key of
:data:`lkca_jax.methods.METHODS`), ``setting`` (Table I's ``depth=N``, Table II's ``gamma=G``,
Table III's ``lambda0=L``, Table IV's ``losses=...``; empty in Tables V-VII), the columns as printed
(Param in M, Flops in G, then the six metrics; empty where the paper prints none), ``source`` (where
in the paper the row is) and ``note``. Values are kept as the printed text, so that a count can be
checked to the printed digits.

What the tables are (the paper's Section IV): Table I, LKCA-Net with 4-64 LKBs on Chikusei x4;
Tables II-IV, LKCA-KD's ablations on Chikusei x4 (the KD weight's decay gamma with lambda0 = 0.01;
lambda0 with gamma = 0.66; the cosine term); Tables V, VI, VII, the nine methods at x4 and x8 on
Chikusei, Houston 2018 and Pavia Centre. The paper's table headings sit under the wrong sections
of its text; the band counts (128, 48, 102) and its own remarks place them as above.

One correction: in Table VI at x4 the paper printed VDSR's Param and Flops in the 3D-FCNN row and
the reverse; here each method has its own (``note`` says so), as all twelve VDSR and 3D-FCNN counts
then agree with their architectures (docs/architecture.md).

The recipe ``recipes/paper.py`` prints these beside new runs; the accounting tests read the Param
and Flops columns from here.
"""

from __future__ import annotations

import csv
import dataclasses
import pathlib

METRICS = ("MPSNR", "MSSIM", "SAM", "CC", "RMSE", "ERGAS")
COLUMNS = ("Param", "Flops", *METRICS)
TABLES = {
    "I": "LKCA-Net with 4 to 64 LKBs (Chikusei x4)",
    "II": "LKCA-KD: the decay gamma of the KD weight, lambda0 = 0.01 (Chikusei x4)",
    "III": "LKCA-KD: the initial KD weight lambda0, gamma = 0.66 (Chikusei x4)",
    "IV": "LKCA-KD: the KD loss with and without its cosine term (Chikusei x4)",
    "V": "Nine methods at x4 and x8 on Chikusei",
    "VI": "Nine methods at x4 and x8 on Houston 2018",
    "VII": "Nine methods at x4 and x8 on Pavia Centre",
}
# Metrics where lower is better (for the sign of a difference's meaning).
LOWER_IS_BETTER = ("SAM", "RMSE", "ERGAS")


@dataclasses.dataclass(frozen=True)
class Entry:
    table: str
    dataset: str
    scale: int
    method: str
    setting: str
    printed: dict  # column -> the printed text ('' where the paper prints nothing)
    source: str
    note: str

    def value(self, column: str) -> float | None:
        text = self.printed.get(column, "")
        return float(text) if text else None

    @property
    def depth(self) -> int:
        """The LKB count of the row's model (Table I's setting; 16 elsewhere)."""
        return int(self.setting.split("=")[1]) if self.setting.startswith("depth=") else 16


def _load() -> tuple[Entry, ...]:
    with open(pathlib.Path(__file__).with_name("paper_tables.csv"), newline="") as f:
        return tuple(Entry(r["table"], r["dataset"], int(r["scale"]), r["method"], r["setting"],
                           {c: r[c] for c in COLUMNS}, r["source"], r["note"]) for r in csv.DictReader(f))


ENTRIES = _load()


def entries(table: str | None = None, **where) -> list[Entry]:
    """The rows of ``table`` (all tables: None) whose fields equal ``where`` (dataset=, scale=, ...)."""
    if table is not None and table not in TABLES:
        raise ValueError(f"no Table {table!r} in the paper; tables: {', '.join(TABLES)}")
    return [e for e in ENTRIES if (table is None or e.table == table)
            and all(getattr(e, k) == v for k, v in where.items())]


def count_entries() -> dict[tuple[str, int, str, int], tuple[str, str]]:
    """The distinct printed (Param, Flops) pairs: {(dataset, scale, method, depth): (Param M, Flops G)}.
    LKCA-KD is counted as LKCA-LR (the same model; the tables print the same pair) and Table I's
    16-LKB row is Table V's LKCA-Net: 17 LKCA entries and 30 of the compared methods."""
    out = {}
    for e in ENTRIES:
        if e.printed["Param"] and e.method != "kd":
            out[(e.dataset, e.scale, e.method, e.depth)] = (e.printed["Param"], e.printed["Flops"])
    return out
