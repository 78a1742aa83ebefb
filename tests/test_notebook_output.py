"""What executed notebooks show people: no machine paths, curves that stay visible when they coincide."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from polca_nb.data import PROJECT_ROOT, shown_path  # noqa: E402
from polca_nb.llm.cache import LLMCache  # noqa: E402
from polca_nb.plots import plot_score_curves  # noqa: E402


def test_shown_path_is_relative_inside_the_project_and_unchanged_outside(tmp_path):
    assert shown_path(PROJECT_ROOT / ".cache" / "llm") == ".cache/llm"
    assert shown_path(tmp_path) == str(tmp_path)
    assert repr(LLMCache(PROJECT_ROOT / ".cache" / "llm-test-repr")).startswith("LLMCache(.cache/llm-test-repr,")


def test_identical_curves_get_their_own_style_and_say_so():
    fig, ax = plt.subplots()
    from polca_nb.curves import CurvePoint

    same = [[CurvePoint(0, 0, 0.2), CurvePoint(1, 10, 0.5)]]
    plot_score_curves(ax, {"polca": [[CurvePoint(0, 0, 0.2), CurvePoint(1, 5, 0.8)]], "sequential": same, "best-of-n": same},
                      grid=[0, 5, 10], initial=0.2)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert "best-of-n (n=1), same curve as sequential" in lines
    styles = {line.get_linestyle() for line in lines.values()}
    assert len(styles) == 3
    plt.close(fig)
