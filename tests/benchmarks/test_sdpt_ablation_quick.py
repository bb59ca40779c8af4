"""The SDPT ablation's --quick mode: each variant really changes the prompt (its parameter count shows it)."""
from benchmarks.sdpt_ablation import VARIANTS, main


def test_quick_ablation_rows_differ_where_their_options_do(tmp_path):
    rows = main(["--model", "tiny-random", "--quick", "--out", str(tmp_path)])
    by_variant = {row.get("variant", "zero-shot"): row for row in rows}
    default = by_variant[next(iter(VARIANTS))]
    one_layer = by_variant["last fusion layer only"]
    shared = by_variant["one set shared by all layers"]
    assert 0 < one_layer["trainable"] < default["trainable"]
    assert 0 < shared["trainable"] < default["trainable"]
    assert by_variant["zero-shot"]["trainable"] == 0
    assert (tmp_path / "ablation.md").read_text().count("\n") == len(rows) + 2
