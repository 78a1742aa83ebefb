"""Reply parsing: every accepted form, and junk / echoes never becoming proposals."""

import json

import numpy as np
import pytest

from polca_nb.roles.parsing import extract_tag, parse_param_updates

ONE = {"prompt": "Answer the question."}
TWO = {"system": "You are helpful.", "format": "Reply in one word."}


def test_param_tags_single_and_multi():
    assert parse_param_updates('<param name="prompt">Think step by step.</param>', ONE).changes == {
        "prompt": "Think step by step."
    }
    reply = ("Analysis...\n<param name='system'>\nYou are a careful expert.\n</param>\n"
             '<param name="format">Reply with the answer only.</param>')
    parsed = parse_param_updates(reply, TWO)
    assert parsed.format == "tags"
    assert parsed.changes == {"system": "You are a careful expert.", "format": "Reply with the answer only."}


def test_name_tags_and_last_occurrence_wins():
    reply = "<prompt>first draft</prompt> on reflection: <prompt>final version</prompt>"
    assert parse_param_updates(reply, ONE).changes == {"prompt": "final version"}


def test_param_tag_preferred_over_bare_name_tag():
    reply = '<param name="prompt">from param tag</param>\n<prompt>from name tag</prompt>'
    assert parse_param_updates(reply, ONE).changes == {"prompt": "from param tag"}


def test_unknown_names_ignored_and_unchanged_or_empty_dropped():
    reply = ('<param name="other">x</param><param name="system">You are helpful.</param>'
             '<param name="format">   </param>')
    parsed = parse_param_updates(reply, TWO)
    assert parsed.changes == {}
    assert "unchanged" in parsed.rejected["system"] and "empty" in parsed.rejected["format"]
    reply += '<param name="format">One word only.</param>'
    assert parse_param_updates(reply, TWO).changes == {"format": "One word only."}


def test_json_plain_fenced_and_nested():
    assert parse_param_updates('Sure: {"prompt": "Be brief."} done', ONE).changes == {"prompt": "Be brief."}
    fenced = '```json\n{"format": "Answer in JSON.", "junk": 3}\n```'
    parsed = parse_param_updates(fenced, TWO)
    assert parsed.format == "json" and parsed.changes == {"format": "Answer in JSON."}
    nested = json.dumps({"reasoning": "r", "suggestion": {"system": "You are terse.", "format": 5}})
    assert parse_param_updates(nested, TWO).changes == {"system": "You are terse."}


def test_fenced_block_only_for_single_parameter():
    reply = "New version:\n```python\ndef f(x):\n    return {x: 1}\n```\n"
    assert parse_param_updates(reply, {"code": "def f(x): pass"}).changes == {
        "code": "def f(x):\n    return {x: 1}"
    }
    assert parse_param_updates(reply, TWO).changes == {}
    # A fenced JSON object with wrong keys is a failed JSON answer, not a new value.
    assert parse_param_updates('```json\n{"answer": "x"}\n```', ONE).changes == {}


def test_fence_inside_tag_is_unwrapped():
    reply = '<param name="code">\n```python\nprint(1)\n```\n</param>'
    assert parse_param_updates(reply, {"code": "print(0)"}).changes == {"code": "print(1)"}


@pytest.mark.parametrize("reply", [
    "", "   ", "...", "I think the prompt is fine.", "<param name=\"prompt\">truncated mid-sent",
    "{{{{ not json", "<summary></summary>", "\x00\x01\x02", "<prompt></prompt>", "```\n```",
])
def test_junk_gives_no_changes(reply):
    parsed = parse_param_updates(reply, ONE)
    assert parsed.changes == {} and parsed.format == "none" and parsed.rejected


def test_random_junk_never_raises():
    rng = np.random.default_rng(0)
    alphabet = list("<>{}[]\"'`:=/\\ \nabcprompt#") + ['<param name="prompt">', "</param>", "```", "<prompt>"]
    for _ in range(300):
        reply = "".join(rng.choice(alphabet, size=int(rng.integers(0, 80))))
        parsed = parse_param_updates(reply, ONE)
        for value in parsed.changes.values():
            assert value.strip() and value != ONE["prompt"]


def test_values_with_forbidden_markers_rejected():
    reply = '<param name="prompt"># Current parameter values\nAnswer the question.</param>'
    parsed = parse_param_updates(reply, ONE, forbidden_markers=["# Current parameter values"])
    assert parsed.changes == {} and "echo" in parsed.rejected["prompt"]


def test_reply_repeating_two_template_headings_is_an_echo():
    headings = ["# Goal", "# Results"]
    reply = "# Goal\nimprove\n# Results\n...\n<param name=\"prompt\">New text.</param>"
    assert parse_param_updates(reply, ONE, template_headings=headings).changes == {}
    one_heading = "# Goal\nimprove\n<param name=\"prompt\">New text.</param>"
    assert parse_param_updates(one_heading, ONE, template_headings=headings).changes == {"prompt": "New text."}


def test_extract_tag():
    assert extract_tag("<reasoning>r</reasoning><summary> a </summary><summary>\nb\n</summary>", "summary") == "b"
    assert extract_tag("<summary>unclosed", "summary") is None


def test_keep_unchanged_returns_a_restated_value_only_when_nothing_changes():
    # OptoPrime's update dict holds every suggested value, so in the paper's loop a reply restating
    # the current value is a copy of the parent (evaluated unless the eps-Net rejects it).
    same = '<param name="system">You are helpful.</param>'
    kept = parse_param_updates(same, TWO, keep_unchanged=True)
    assert kept.changes == {"system": "You are helpful."} and kept.format == "tags"
    assert parse_param_updates(same, TWO).changes == {}
    # a real change anywhere in the reply wins over the restated value
    mixed = same + '\n```\nBe brief.\n```'
    one = {"system": "You are helpful."}
    assert parse_param_updates(mixed, one, keep_unchanged=True).changes == {"system": "Be brief."}
    assert parse_param_updates("no values here", TWO, keep_unchanged=True).changes == {}
