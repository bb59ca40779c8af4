"""The SDPT ablation's --quick mode: each variant really changes the prompt (its parameter count shows it)."""
import json

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


def test_a_logged_row_is_reused_only_while_it_was_measured_on_todays_defaults(tmp_path):
    log = tmp_path / "rows.jsonl"
    args = ["--model", "tiny-random", "--quick", "--results", str(log)]
    main(args)
    measured = log.read_text().splitlines()
    main(args)
    assert log.read_text().splitlines() == measured  # nothing rerun

    # a row measured when SDPT had other defaults (here: one scale per stream) no longer counts
    stale = [json.loads(line) for line in measured]
    for row in stale:
        if row.get("variant") == next(iter(VARIANTS)):
            row["options"] = {**row["options"], "per_head_scales": not row["options"]["per_head_scales"]}
    log.write_text("".join(json.dumps(row) + "\n" for row in stale))
    shown = main(args + ["--max-minutes", "0"])  # runs nothing: the stale row is left out of the table, not mixed in
    assert next(iter(VARIANTS)) not in {row.get("variant") for row in shown}
    main(args)
    rerun = [json.loads(line) for line in log.read_text().splitlines()[len(stale):]]
    assert [row["variant"] for row in rerun] == [next(iter(VARIANTS))]
