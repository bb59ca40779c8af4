"""The withheld-classes benchmark's variant names: what each option switches, and a clear refusal of a wrong name."""
import pytest

from benchmarks.withheld_classes import OPTIONS, VARIANTS, main, table, variant_options


def test_options_are_read_from_the_name_in_any_order():
    assert variant_options("never-worse") == set()
    assert variant_options("never-worse, teacher 10, margin 0.02") == {"teacher 10", "margin 0.02"}
    assert all(variant_options(v) <= set(OPTIONS) for v in VARIANTS if v != "today")


@pytest.mark.parametrize("name", ["never-worse, teacher 5", "never worse", "today, teacher 10", "never-worse,margin 0.02"])
def test_a_wrong_name_is_refused_with_the_names_that_work(name):
    with pytest.raises(ValueError, match="never-worse' followed by any of"):
        variant_options(name)


def test_the_command_line_refuses_a_wrong_variant_before_any_work(capsys):
    with pytest.raises(SystemExit):
        main(["--variants", "never-worse, teacher 5"])
    assert "unknown variant 'never-worse, teacher 5'" in capsys.readouterr().err


def test_table_keeps_known_variants_in_order_and_others_after():
    def row(method, seed=0):
        return {"task": "many", "method": method, "shots": 10, "seed": seed, "map": 0.3, "withheld_map": 0.2,
                "kept_map": 0.4, "forgetting_map50": 0.7, "seconds": 1.0}

    text = table([row("never-worse, full schedule"), row("never-worse, teacher 10"), row("never-worse"),
                  row("today")])
    order = [line.split(" | ")[2] for line in text.splitlines()[2:]]
    assert order == ["today", "never-worse", "never-worse, teacher 10", "never-worse, full schedule"]
