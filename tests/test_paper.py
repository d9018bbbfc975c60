"""lkca_jax/paper_tables.csv against the paper's text: a sample of entries typed here from the
paper (not read from the data file), the table sizes, and the one correction it makes."""

import pytest

from lkca_jax import paper

# (table, dataset, scale, method, setting, column): the printed text, typed from the paper.
TYPED = {
    ("I", "chikusei", 4, "net", "depth=4", "MPSNR"): "39.7607",
    ("I", "chikusei", 4, "net", "depth=64", "Param"): "7.297",
    ("I", "chikusei", 4, "net", "depth=48", "ERGAS"): "4.8360",
    ("II", "chikusei", 4, "kd", "gamma=0.75", "MPSNR"): "40.2210",
    ("II", "chikusei", 4, "kd", "gamma=0.50", "SAM"): "2.3124",
    ("III", "chikusei", 4, "kd", "lambda0=1.000", "MPSNR"): "40.1817",
    ("III", "chikusei", 4, "kd", "lambda0=0.005", "RMSE"): "0.0116",
    ("IV", "chikusei", 4, "kd", "losses=l1+grad", "MPSNR"): "40.2003",
    ("IV", "chikusei", 4, "kd", "losses=l1+grad", "CC"): "",  # Table IV prints four metrics
    ("V", "chikusei", 4, "net", "", "MPSNR"): "40.3106",
    ("V", "chikusei", 4, "bicubic", "", "MPSNR"): "37.6377",
    ("V", "chikusei", 8, "essaformer", "", "Flops"): "205.593",
    ("V", "chikusei", 8, "kd", "", "SAM"): "3.9341",
    ("VI", "houston", 4, "essaformer", "", "MPSNR"): "47.0629",
    ("VI", "houston", 8, "sspsr", "", "Param"): "15.372",
    ("VI", "houston", 8, "lr", "", "CC"): "0.9480",
    ("VII", "pavia", 4, "kd", "", "MPSNR"): "32.6104",
    ("VII", "pavia", 8, "net", "", "Flops"): "2.18",  # printed with two decimals
    ("VII", "pavia", 8, "fcnn3d", "", "SAM"): "11.9678",
    ("VII", "pavia", 8, "bicubic", "", "ERGAS"): "5.5958",
}


@pytest.mark.parametrize("key", sorted(TYPED), ids=lambda k: "-".join(map(str, k[:5])) + f"-{k[5]}")
def test_entries_as_printed(key):
    table, dataset, scale, method, setting, column = key
    (entry,) = paper.entries(table, dataset=dataset, scale=scale, method=method, setting=setting)
    assert entry.printed[column] == TYPED[key]


def test_every_table_has_its_rows():
    sizes = {t: len(paper.entries(t)) for t in paper.TABLES}
    assert sizes == {"I": 6, "II": 4, "III": 5, "IV": 2, "V": 18, "VI": 18, "VII": 18}
    for t in ("V", "VI", "VII"):  # nine methods at each of two scales
        rows = paper.entries(t)
        assert {(e.scale, e.method) for e in rows} == {(s, m) for s in (4, 8) for m in (
            "bicubic", "vdsr", "fcnn3d", "sspsr", "msdformer", "essaformer", "net", "lr", "kd")}


def test_houston_x4_swap_is_corrected_and_marked():
    """The paper printed VDSR 1.268M / 0.324G and 3D-FCNN 1.134M / 0.290G at Houston x4 (each the
    other's); the data gives each method its own and says so."""
    vdsr, = paper.entries("VI", scale=4, method="vdsr")
    fcnn, = paper.entries("VI", scale=4, method="fcnn3d")
    assert (vdsr.printed["Param"], vdsr.printed["Flops"]) == ("1.134", "0.290")
    assert (fcnn.printed["Param"], fcnn.printed["Flops"]) == ("1.268", "0.324")
    assert "swapped" in vdsr.note and "swapped" in fcnn.note
    assert [e for e in paper.ENTRIES if e.note] == [vdsr, fcnn]
    assert vdsr.printed["MPSNR"] == "45.7846"  # the metrics stay in their rows


def test_shared_rows_agree():
    """Rows the paper prints twice: Table I's 16 LKBs is Table V's LKCA-Net; the default KD setting
    (gamma 0.66, lambda0 0.01, all three terms) is Table V's LKCA-KD in Tables II, III and IV."""
    net, = paper.entries("V", scale=4, method="net")
    assert paper.entries("I", setting="depth=16")[0].printed == net.printed
    kd, = paper.entries("V", scale=4, method="kd")
    for table, setting in (("II", "gamma=0.66"), ("III", "lambda0=0.010"), ("IV", "losses=l1+grad+cos")):
        row, = paper.entries(table, setting=setting)
        assert all(row.printed[m] in ("", kd.printed[m]) for m in paper.METRICS)
    for table in ("V", "VI", "VII"):  # KD and LR are one model: the same Param and Flops
        for scale in (4, 8):
            kd, = paper.entries(table, scale=scale, method="kd")
            lr, = paper.entries(table, scale=scale, method="lr")
            assert (kd.printed["Param"], kd.printed["Flops"]) == (lr.printed["Param"], lr.printed["Flops"])


def test_unknown_table_is_refused():
    with pytest.raises(ValueError, match="VIII"):
        paper.entries("VIII")
