"""HotpotQA benchmark: loader, scoring and feedback, prompt format, token measurement, cost arithmetic,
downloader format, and a scripted (no server) run of the POLCA loop."""

import hashlib
import json
import math
import sys
import types

import pytest

from polca_nb.benchmarks import hotpotqa as hq
from polca_nb.data import data_dir
from polca_nb.llm.base import LLMReply, ScriptedLLM, with_ledger
from polca_nb.llm.config import Price
from polca_nb.types import Example

SHARED_FILE = data_dir() / hq.DATA_FILE
needs_shared = pytest.mark.skipif(not SHARED_FILE.is_file(), reason=f"{SHARED_FILE} not present")


def record(question, answer, titles, sentences, supporting=()):
    return {"question": question, "answer": answer, "type": "bridge", "level": "hard",
            "supporting_facts": {"title": list(supporting), "sent_id": [0] * len(supporting)},
            "context": {"title": list(titles), "sentences": [list(s) for s in sentences]}}


RECORDS = [
    record("Which city is the capital of France?", "Paris",
           ["Rome", "France", "Berlin", "Paris"],
           [["Rome is in Italy."], ["France is a country.", "Its capital is Paris."], ["Berlin is big."],
            ["Paris is a city."]], supporting=["France", "Paris"]),
    record("Is water wet?", "yes", ["Water", "Fire"], [["Water is wet."], ["Fire is hot."]], supporting=["Water"]),
    record("Who wrote Hamlet?", "William Shakespeare", ["Hamlet", "Globe"],
           [["Hamlet is a play by William Shakespeare."], ["The Globe is a theatre."]], supporting=["Hamlet"]),
    record("What colour is the sky?", "blue", ["Sky", "Grass"], [["The sky is blue."], ["Grass is green."]],
           supporting=["Sky"]),
]


@pytest.fixture
def data_folder(tmp_path, monkeypatch):
    """A data folder holding the hand-made records, found through $POLCA_DATA_DIR."""
    path = tmp_path / hq.DATA_FILE
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(RECORDS), encoding="utf-8")
    monkeypatch.setenv("POLCA_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(hq.data, "PROJECT_ROOT", tmp_path / "no-project")
    return tmp_path


# --- loader ----------------------------------------------------------------------------------------
def test_loader_reads_records_in_file_order(data_folder):
    examples = hq.load_examples(3)
    assert [ex.id for ex in examples] == ["hotpot000", "hotpot001", "hotpot002"]
    first = examples[0].data
    assert first.question == RECORDS[0]["question"] and first.answer == "Paris"
    assert first.titles == ("Rome", "France", "Berlin", "Paris")
    assert first.sentences[1] == ("France is a country.", "Its capital is Paris.")
    assert first.supporting_titles == ("France", "Paris")


def test_loader_missing_file_names_both_ways_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("POLCA_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(hq.data, "PROJECT_ROOT", tmp_path / "no-project")
    with pytest.raises(FileNotFoundError) as info:
        hq.load_examples()
    message = str(info.value)
    assert "POLCA_DATA_DIR" in message and hq.DATA_FILE in message
    assert "python -m polca_nb.benchmarks.hotpotqa download" in message
    assert str(tmp_path / "empty") in message


def test_loader_rejects_bad_n_and_malformed_records(data_folder, tmp_path):
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n "):
            hq.load_examples(bad)
    with pytest.raises(ValueError, match="more than the 4 examples"):
        hq.load_examples(5)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps([{"question": "q?", "answer": "a"}]))
    with pytest.raises(ValueError, match="record 0 is malformed"):
        hq.load_examples(1, path=broken)
    empty_answer = tmp_path / "empty_answer.json"
    empty_answer.write_text(json.dumps([record("q?", " . ", ["T"], [["s"]])]))
    with pytest.raises(ValueError, match="answer"):
        hq.load_examples(1, path=empty_answer)


@needs_shared
def test_shared_file_is_the_papers_hundred_tasks():
    raw = SHARED_FILE.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == hq.DATA_SHA256
    examples = hq.load_examples(100, path=SHARED_FILE)
    records = json.loads(raw)
    assert len(examples) == 100 and len({ex.id for ex in examples}) == 100
    assert all(ex.data.question == r["question"] and ex.data.answer == r["answer"]
               for ex, r in zip(examples, records))
    # ten paragraphs each, except task 27, which HotpotQA ships with only its two gold paragraphs
    assert [i for i, ex in enumerate(examples) if len(ex.data.titles) != 10] == [27]
    assert all(set(ex.data.supporting_titles) <= set(ex.data.titles) for ex in examples)
    assert examples[-1].data.answer == "no"  # "Are Yingkou and Fuding the same level of city?"


# --- scoring and feedback --------------------------------------------------------------------------
@pytest.mark.parametrize("output, answer, correct", [
    ("Paris", "Paris", True),
    ("paris", "PARIS", True),                              # case
    ("  Paris.  ", "Paris", True),                         # whitespace, trailing period
    ("Yes!?", "yes", True),                                # several trailing marks
    ("yes", "Yes.", True),                                 # the answer is normalised too
    ("The capital is Paris, of course", "Paris", True),    # substring rule
    ("It is William Shakespeare;", "William Shakespeare", True),
    ("Greenwich Village", "Greenwich Village, New York City", False),  # output inside answer is not enough
    ("3677 seated", "3,677 seated", False),                # inner punctuation is kept
    ("Lyon", "Paris", False),
    ("", "Paris", False),
    ("Paris!", "Paris!", True),
    ("No idea", "no", True),                               # the lenient substring rule, as in the paper
])
def test_is_correct(output, answer, correct):
    assert hq.is_correct(output, answer) is correct


def test_normalize_answer_strips_only_trailing_punctuation():
    assert hq.normalize_answer("  U.S.A.  ") == "u.s.a"
    assert hq.normalize_answer("...Yes") == "...yes"
    assert hq.normalize_answer("Hello, world:;") == "hello, world"
    with pytest.raises(ValueError, match="text must be a str"):
        hq.normalize_answer(None)
    with pytest.raises(ValueError, match="answer must be non-empty"):
        hq.is_correct("x", " ?! ")


def test_feedback_text_formats():
    q = hq.parse_record(RECORDS[0], 0)
    good = hq.score_output("It is Paris.", q)
    assert (good.score, good.feedback, good.output) == (1.0, "Correct.", "It is Paris.")
    bad = hq.score_output("Lyon", q)
    context = ("Paragraph 1 (Rome):\nRome is in Italy.\n\nParagraph 2 (France):\nFrance is a country. Its capital "
               "is Paris.\n\nParagraph 3 (Berlin):\nBerlin is big.\n\nParagraph 4 (Paris):\nParis is a city.")
    assert bad.score == 0.0 and bad.output == "Lyon"
    # the paper guide's form, its closing sentence verbatim (xuanfeiren/hotpotqa prompt_opt/trace_opt.py)
    assert bad.feedback == (f"Incorrect. Expected: 'Paris', Got: 'Lyon'.\nContext: {context}\n"
                            "Question: Which city is the capital of France?\n"
                            "Identify the failure mode and update meta_instructions with improved reasoning and "
                            "formatting guidance.")
    assert bad.feedback.endswith("\n" + hq.FEEDBACK_CLOSING)
    # the feedback shows the context the program saw
    short = hq.score_output("Lyon", q, max_paragraphs=2)
    assert "Rome" not in short.feedback and "Paragraph 2 (Paris)" in short.feedback


# --- prompt format ---------------------------------------------------------------------------------
def test_prompt_format_is_the_harness_format():
    q = hq.parse_record(RECORDS[1], 1)
    expected = ("Be brief.\n\nContext:\nParagraph 1 (Water):\nWater is wet.\n\nParagraph 2 (Fire):\nFire is hot."
                "\n\nQuestion: Is water wet?\n\nAnswer:")
    assert hq.build_prompt("Be brief.", q.context(), q.question) == expected
    llm = ScriptedLLM(replies=["Yes."])
    evaluation = hq.HotpotQAEvaluator(llm)({"meta_instructions": "Be brief."}, Example("x", q), seed=1234)
    assert evaluation.score == 1.0
    (call,) = llm.calls
    assert call["messages"] == [{"role": "user", "content": expected}]
    assert call["system"] == "" and call["role"] == "task"
    assert call["temperature"] == 0.1 and call["sample_id"] == 1234
    assert call["max_tokens"] == 4096  # the harness's evaluate_single(max_tokens=4096)


def test_task_max_tokens_paper_is_upstreams_4096_smoke_keeps_its_small_cap():
    assert hq.UPSTREAM_TASK_MAX_TOKENS == 4096 and hq.HotpotQAEvaluator(ScriptedLLM()).max_tokens == 4096
    assert hq.HotpotPreset("x", n_examples=2, iterations=1, seeds=(0,)).task_max_tokens == 4096
    assert hq.PRESETS["paper"].task_max_tokens == 4096
    assert hq.PRESETS["smoke"].task_max_tokens == hq.SMOKE_TASK_MAX_TOKENS == 24  # the offline 135M model
    for name in ("paper", "smoke"):
        preset = hq.PRESETS[name]
        assert hq.make_roles(ScriptedLLM(), preset).evaluator.max_tokens == preset.task_max_tokens


def test_shortened_context_keeps_supporting_paragraphs_in_order():
    q = hq.parse_record(RECORDS[0], 0)
    assert [t for t, _ in q.paragraphs(None)] == ["Rome", "France", "Berlin", "Paris"]
    assert [t for t, _ in q.paragraphs(3)] == ["Rome", "France", "Paris"]
    assert [t for t, _ in q.paragraphs(1)] == ["France", "Paris"]  # supporting ones are never dropped
    assert q.context(2).startswith("Paragraph 1 (France):\n") and "Paragraph 2 (Paris):" in q.context(2)
    with pytest.raises(ValueError, match="max_paragraphs"):
        q.paragraphs(0)
    with pytest.raises(ValueError, match="max_paragraphs"):
        hq.HotpotQAEvaluator(ScriptedLLM(), max_paragraphs=0)


def test_evaluator_rejects_params_without_meta_instructions():
    q = hq.parse_record(RECORDS[1], 1)
    with pytest.raises(ValueError, match="meta_instructions"):
        hq.HotpotQAEvaluator(ScriptedLLM(replies=["yes"]))({"prompt": "x"}, Example("x", q), seed=0)


# --- token measurement and cost -------------------------------------------------------------------
class TokenCountingLLM:
    """Replies 'ok' and reports 1 input token per 4 prompt characters (cached or not alike)."""

    def complete(self, *, system, messages, role, max_tokens=1024, temperature=0.0, sample_id=0, tools=None,
                 stop=None):
        chars = len(system) + sum(len(m["content"]) for m in messages)
        return LLMReply("ok", input_tokens=chars // 4, output_tokens=3, cached=sample_id % 2 == 1)


def tracked_llm():
    """A TokenCountingLLM with a ledger, and a tracker of everything it answers from now on."""
    llm = with_ledger(TokenCountingLLM())
    return llm, llm.ledger.track()


def test_a_ledger_tracker_counts_every_reply_per_role_cached_ones_too():
    llm, usage = tracked_llm()
    for i in range(3):
        llm.complete(system="", messages=[{"role": "user", "content": "x" * 40}], role="task", sample_id=i)
    llm.complete(system="sys!", messages=[{"role": "user", "content": "y" * 16}], role="proposer")
    task, proposer = usage.usage("task"), usage.usage("proposer")
    assert (task.requests, task.prompt_chars, task.input_tokens, task.output_tokens) == (3, 120, 30, 9)
    assert task.per_request() == (10.0, 3.0) and task.tokens_per_char() == 0.25 and task.cache_hits == 1
    assert (proposer.requests, proposer.prompt_chars, proposer.input_tokens) == (1, 20, 5)
    assert llm.ledger.usage("task").input_tokens == 20  # the ledger's own totals: live spend only
    assert all(math.isnan(v) for v in usage.usage("summarizer").per_request())


def test_paper_call_counts_and_cost():
    paper = hq.PRESETS["paper"]
    assert (paper.n_examples, paper.iterations, paper.num_candidates, paper.batch_size, paper.eps,
            paper.test_every, paper.test_repeats, len(paper.seeds)) == (100, 100, 5, 2, 0.1, 10, 5, 3)
    counts = hq.max_calls_per_seed(paper)
    # 100 iterations x (10 exploration + <=10 validation) = the paper's ~2000 metric calls, plus
    # 11 test passes (seed program + every 10 iterations) x 100 tasks x 5 evaluations
    assert counts == {"task": 2000 + 11 * 500, "proposer": 500, "summarizer": 100}
    estimate = hq.estimate_cost(paper, {"task": (1000, 10), "proposer": (2000, 500), "summarizer": (3000, 300)},
                                Price(3.0, 15.0))
    expected_task = 3 * 7500 * (1000 * 3.0 + 10 * 15.0) / 1e6
    assert estimate.usd["task"] == pytest.approx(expected_task)
    assert estimate.total_usd == pytest.approx(expected_task + 3 * 500 * (2000 * 3 + 500 * 15) / 1e6
                                               + 3 * 100 * (3000 * 3 + 300 * 15) / 1e6)
    # Prompt caching: of each 5 test repeats, 1 pays in full, 1 writes (1.25x) and 3 read (0.1x).
    tokens = {"task": (1000, 10), "proposer": (2000, 500), "summarizer": (3000, 300)}
    cached = hq.estimate_cost(paper, tokens, Price(3.0, 15.0), caching=True)
    test_groups = 3 * 11 * 100
    saving = test_groups * 1000 * (5 * 3.0 - (3.0 + 3.75 + 3 * 0.3)) / 1e6
    assert cached.usd["task"] == pytest.approx(expected_task - saving)
    assert cached.usd["proposer"] == estimate.usd["proposer"]
    with pytest.raises(ValueError, match="lacks roles"):
        hq.estimate_cost(paper, {"task": (1, 1)}, Price(1.0, 1.0))


def test_validation_set_is_the_first_ten_tasks_train_and_test_all():
    examples = [Example(f"e{i}", hq.parse_record(RECORDS[i % 4], i)) for i in range(100)]
    evaluator = hq.HotpotQAEvaluator(ScriptedLLM())
    problem = hq.make_problem(examples, evaluator)
    assert hq.PAPER_NUM_VALIDATION == 10
    assert [ex.id for ex in problem.valset] == [f"e{i}" for i in range(10)]
    assert list(problem.trainset) == list(problem.testset) == examples
    # fewer than 10 tasks (the smoke preset's 6): all of them validate
    assert list(hq.make_problem(examples[:6], evaluator).valset) == examples[:6]
    assert [ex.id for ex in hq.make_problem(examples, evaluator, n_validation=3).valset] == ["e0", "e1", "e2"]
    # the former setup, validation = train, only when asked for by name
    assert list(hq.make_problem(examples, evaluator, n_validation=None).valset) == examples
    with pytest.raises(ValueError, match="n_validation"):
        hq.make_problem(examples, evaluator, n_validation=0)
    assert hq.PRESETS["paper"].n_validation == 10 and hq.PRESETS["paper"].validation_size == 10
    assert hq.PRESETS["smoke"].validation_size == hq.PRESETS["smoke"].n_examples == 6
    assert hq.HotpotPreset("x", n_examples=40, iterations=1, seeds=(0,), n_validation=None).validation_size == 40


def test_run_seed_validates_on_the_presets_validation_set(data_folder):
    """The loop draws every validation batch from the first n_validation tasks only."""
    examples = hq.load_examples(4)
    llm = scripted_models(examples)
    preset = hq.HotpotPreset("tiny", n_examples=4, iterations=3, seeds=(0,), num_candidates=2, batch_size=2,
                             eps=0.0, use_summarizer=False, test_every=10, test_repeats=1, n_validation=2)
    run = hq.run_seed(preset, llm, seed=3, embedder=None, examples=examples)
    validations = [e for e in run.result.events if e["type"] == "evaluation" and e["source"] == "validate"]
    assert validations and {e["example_id"] for e in validations} == {"hotpot000", "hotpot001"}


def test_preset_validation_names_the_field():
    with pytest.raises(ValueError, match="HotpotPreset.n_examples"):
        hq.HotpotPreset("x", n_examples=101, iterations=1, seeds=(0,))
    with pytest.raises(ValueError, match="HotpotPreset.batch_size"):
        hq.HotpotPreset("x", n_examples=2, iterations=1, seeds=(0,), batch_size=3)
    with pytest.raises(ValueError, match="HotpotPreset.seeds"):
        hq.HotpotPreset("x", n_examples=2, iterations=1, seeds=())
    with pytest.raises(ValueError, match="HotpotPreset.eps"):
        hq.HotpotPreset("x", n_examples=2, iterations=1, seeds=(0,), eps=-0.1)
    with pytest.raises(ValueError, match="HotpotPreset.n_validation"):
        hq.HotpotPreset("x", n_examples=2, iterations=1, seeds=(0,), n_validation=0)
    with pytest.raises(ValueError, match="HotpotPreset.batch_size 3 exceeds the 2 validation tasks"):
        hq.HotpotPreset("x", n_examples=20, iterations=1, seeds=(0,), batch_size=3, n_validation=2)


# --- downloader ------------------------------------------------------------------------------------
def test_download_without_datasets_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ModuleNotFoundError, match="pip install datasets"):
        hq.download(2, tmp_path / "out.json")


@needs_shared
def test_download_writes_the_shared_files_bytes(monkeypatch, tmp_path, capsys):
    """Fed HF-style rows (with the `id` field the shared file lacks), the writer reproduces the file."""
    rows = [{"id": f"id{i}", **r} for i, r in enumerate(json.loads(SHARED_FILE.read_text(encoding="utf-8")))]
    asked = {}

    def load_dataset(name, config, split, streaming):
        asked.update(name=name, config=config, split=split, streaming=streaming)
        return iter(rows + [{"id": "extra"}])  # the writer must stop after n rows

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    out = hq.download(100, tmp_path / "hotpot.json")
    assert asked == {"name": "hotpotqa/hotpot_qa", "config": "distractor", "split": "validation", "streaming": True}
    assert hq.sha256_of(out) == hq.DATA_SHA256
    assert hq.main(["download", "--out", str(tmp_path / "cli.json")]) == 0
    assert "identical to the paper's 100-task file" in capsys.readouterr().out


def test_download_command_without_datasets_exits_with_a_message(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "datasets", None)
    assert hq.main(["download", "--out", str(tmp_path / "x.json")]) == 2
    assert "pip install datasets" in capsys.readouterr().err and not (tmp_path / "x.json").exists()


# --- the loop with scripted models (no server) -----------------------------------------------------
KEYWORD = "Quote the exact answer."


def scripted_models(examples):
    """Task model: right iff the meta-instructions carry KEYWORD. Proposer: adds KEYWORD. Summarizer: fixed."""
    answers = {ex.data.question: ex.data.answer for ex in examples}

    def reply(request):
        text = request["messages"][0]["content"]
        if request["role"] == "task":
            instructions = text.split("\n\nContext:\n")[0]
            question = text.rsplit("Question: ", 1)[1].removesuffix("\n\nAnswer:")
            return f"It is {answers[question]}." if KEYWORD in instructions else "I cannot tell."
        if request["role"] == "proposer":
            return f'The answers were vague.\n<param name="meta_instructions">\n{KEYWORD}\n</param>'
        return "<summary>Quote answers exactly.</summary>"

    return ScriptedLLM(replies=reply)


def test_scripted_loop_learns_the_keyword_and_records_test_curve(data_folder):
    examples = hq.load_examples(4)
    llm = scripted_models(examples)
    preset = hq.HotpotPreset("tiny", n_examples=4, iterations=3, seeds=(0,), num_candidates=2, batch_size=2,
                             eps=0.0, use_summarizer=True, test_every=1, test_repeats=2)
    run = hq.run_seed(preset, llm, seed=5, embedder=None, examples=examples)

    assert run.initial_test == 0.0
    assert run.best_instructions == KEYWORD and run.result.best.mean == 1.0
    points = run.test_points()
    assert [p[0] for p in points] == [0, 1, 2] and [p[1] for p in points] == [2, 4, 6]
    assert points[-1][3] == 1.0
    curve = run.best_so_far("eval_step")
    assert curve[0].metric_calls == 0 and curve[0].score == 0.0
    assert [p.score for p in curve] == sorted(p.score for p in curve)  # running max never decreases
    assert [p.metric_calls for p in run.best_so_far("metric_calls")][1:] == [p[2] for p in points]

    roles = [c["role"] for c in llm.calls]
    assert roles.count("proposer") >= 1 and roles.count("summarizer") >= 1
    # every rollout the loop logged was one task call whose sample_id is that evaluation's seed
    task_ids = {c["sample_id"] for c in llm.calls if c["role"] == "task"}
    logged = [e for e in run.result.events if e["type"] == "evaluation"]
    assert logged and {e["seed"] for e in logged} <= task_ids
    assert all(c["temperature"] == 0.1 for c in llm.calls if c["role"] == "task")
    # one initial test pass + 3 tests, 4 tasks x 2 repeats each, plus the logged search rollouts
    assert roles.count("task") == 4 * 8 + run.result.spent.metric_calls


def test_make_config_applies_overrides():
    preset = hq.PRESETS["paper"]
    config = hq.make_config(preset, eps=0.0, use_summarizer=False, num_candidates=3)
    assert (config.eps, config.use_summarizer, config.num_candidates, config.batch_size) == (0.0, False, 3, 2)
    assert config.budget.max_iterations == 100 and config.test_every == 10 and config.test_repeats == 5
    capped = hq.make_config(hq.HotpotPreset("x", n_examples=4, iterations=9, seeds=(0,), max_metric_calls=40))
    assert capped.budget.max_metric_calls == 40 and capped.budget.max_iterations is None


def test_best_so_far_is_the_running_max_of_test_scores():
    from polca_nb.runner import IterationStats

    tests = {1: 0.5, 3: 0.25, 5: 0.75}  # iteration -> test accuracy (a dip at iteration 3)
    history = [IterationStats(t, 10 * (t + 1), 0, 0.5, 2, 3, 1, 0, 3, tests.get(t)) for t in range(6)]
    run = hq.HotpotRun(seed=0, result=types.SimpleNamespace(history=history), initial_test=0.4)
    assert run.test_points() == [(1, 4, 20, 0.5), (3, 8, 40, 0.25), (5, 12, 60, 0.75)]
    steps = run.best_so_far("eval_step")
    assert [(p.metric_calls, p.score) for p in steps] == [(0, 0.4), (4, 0.5), (8, 0.5), (12, 0.75)]
    assert [p.metric_calls for p in run.best_so_far("metric_calls")] == [0, 20, 40, 60]
    with pytest.raises(ValueError, match="x must be"):
        run.best_so_far("seconds")


def test_paper_reference_cites_its_source_and_matches_the_notes():
    ref = hq.paper_reference()
    assert "polca-method.md §5.2" in ref["source"] and "approx" in ref["source"]
    curves = ref["curves"]
    assert set(curves) == {"POLCA", "OpenEvolve", "GEPA"}
    for name, curve in curves.items():
        assert curve["source"].startswith("polca-method.md §5.2"), name
        xs, ys = zip(*curve["points"])
        assert list(xs) == sorted(xs) and list(ys) == sorted(ys), name  # best-so-far curves never decrease
        assert ys[0] == 0.726, name  # all methods start from the same seed prompt
    assert dict(map(tuple, curves["POLCA"]["points"]))[40] == 0.936 and curves["POLCA"]["points"][-1] == [180, 0.968]


def test_paper_tokens_per_request_scales_measurements():
    llm, usage = tracked_llm()
    for role, chars, n in (("task", 40, 4), ("proposer", 400, 2), ("summarizer", 100, 1)):
        for i in range(n):
            llm.complete(system="", messages=[{"role": "user", "content": "z" * chars}], role=role, sample_id=i)
    examples = [Example(f"e{i}", hq.parse_record(r, i)) for i, r in enumerate(RECORDS)]
    preset = hq.HotpotPreset("p", n_examples=4, iterations=2, seeds=(0,), task_max_tokens=2, proposer_max_tokens=50)
    profile = hq.paper_tokens_per_request(usage, 0.5, examples, preset)
    assert profile["task"] == (pytest.approx(0.5 * hq.mean_prompt_chars(examples)), 2.0)  # 3 measured, capped at 2
    assert profile["proposer"] == (200.0, 3.0) and profile["summarizer"] == (50.0, 3.0)
    worst = hq.paper_tokens_per_request(usage, 0.5, examples, preset, worst_case=True)
    assert worst["proposer"][1] == 50.0 and worst["summarizer"][1] == preset.summarizer_max_tokens
    # off the local server the ratio comes from the tracked task requests
    assert hq.tokens_per_char(llm, ["unused"], usage)[0] == 0.25
    with pytest.raises(ValueError, match="no task requests"):
        hq.tokens_per_char(llm, ["unused"])
    with pytest.raises(ValueError, match="no 'task' requests"):
        hq.paper_tokens_per_request(tracked_llm()[1], 0.5, examples, preset)


@pytest.mark.slow  # importing matplotlib + seaborn takes seconds on 2 busy cores
def test_plot_runs_draws_mean_curve_and_references(data_folder):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    examples = hq.load_examples(4)
    preset = hq.HotpotPreset("tiny", n_examples=4, iterations=2, seeds=(0,), num_candidates=2, eps=0.0,
                             use_summarizer=False, test_every=1, test_repeats=1)
    runs = [hq.run_seed(preset, scripted_models(examples), seed=s, embedder=None, examples=examples) for s in (0, 1)]
    fig, ax = plt.subplots()
    hq.plot_runs(ax, runs, x="eval_step", reference={"POLCA": [[0, 0.7], [20, 0.9]]})
    labels = [line.get_label() for line in ax.lines]
    assert any("(n=2)" in label for label in labels) and "POLCA (paper, approx)" in labels
    plt.close(fig)


def test_a_broken_task_model_stops_the_run_before_the_search(data_folder):
    """The search loop turns evaluator errors into zero scores; the initial test must not."""
    examples = hq.load_examples(2)
    preset = hq.HotpotPreset("tiny", n_examples=2, iterations=1, seeds=(0,), eps=0.0, use_summarizer=False,
                             test_every=1, test_repeats=1)
    broken = ScriptedLLM(replies=[])  # raises RuntimeError on the first call
    with pytest.raises(RuntimeError, match="ran out of replies"):
        hq.run_seed(preset, broken, seed=0, embedder=None, examples=examples)
    assert len(broken.calls) == 1
    accuracy = hq.measure_accuracy(hq.HotpotQAEvaluator(ScriptedLLM(replies=["Paris", "no", "Paris", "yes"])),
                                   {"meta_instructions": "x"}, examples, repeats=2, seed=0)
    assert accuracy == 0.75  # task 0 (Paris) right twice, task 1 (yes) right once


# --- the benchmark shape: presets.setup, experiment.run, the data command (issue 13) ---------------
@pytest.fixture
def paper_sized_data(tmp_path, monkeypatch):
    """100 hand-made records (the paper preset's size), found through $POLCA_DATA_DIR."""
    path = tmp_path / hq.DATA_FILE
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(RECORDS * 25), encoding="utf-8")
    monkeypatch.setenv("POLCA_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name", ["smoke", "paper"])
def test_setup_builds_each_preset_without_calling_the_model(paper_sized_data, name):
    from polca_nb.benchmarks.common import BenchmarkSetup
    from polca_nb.benchmarks.hotpotqa.presets import setup

    preset = hq.PRESETS[name]
    llm = ScriptedLLM(replies=[])  # any call would raise
    built = setup(name, llm)
    assert isinstance(built, BenchmarkSetup) and llm.calls == []
    assert built.config == hq.make_config(preset)
    problem = built.problem
    assert len(problem.trainset) == len(problem.testset) == preset.n_examples
    assert len(problem.valset) == preset.validation_size
    assert problem.seed_params == hq.SEED_PARAMS == {hq.PARAM: hq.INITIAL_INSTRUCTIONS}
    assert problem.evaluator == hq.HotpotQAEvaluator(llm, max_tokens=preset.task_max_tokens,
                                                     temperature=preset.task_temperature,
                                                     max_paragraphs=preset.max_paragraphs)
    assert built.proposer.max_tokens == preset.proposer_max_tokens and built.summarizer is not None
    assert built.summarizer.max_tokens == preset.summarizer_max_tokens
    # overrides go to the config; without a summarizer the setup carries none
    plain = setup(preset, llm, use_summarizer=False, eps=0.0)
    assert plain.summarizer is None and plain.config.eps == 0.0 and llm.calls == []
    with pytest.raises(ValueError, match="unknown HotpotQA preset 'big'"):
        setup("big", llm)


def test_experiment_run_runs_every_seed_into_its_run_dir(data_folder, tmp_path):
    from polca_nb.benchmarks.common import ExperimentResult

    examples = hq.load_examples(4)
    preset = hq.HotpotPreset("tiny", n_examples=4, iterations=2, seeds=(0, 1), num_candidates=2, eps=0.0,
                             use_summarizer=False, test_every=1, test_repeats=1)
    result = hq.run(preset, scripted_models(examples), run_root=tmp_path / "runs", embedder=None)
    assert isinstance(result, ExperimentResult) and tuple(result.seeds) == (0, 1) and len(result.runs) == 2
    single = hq.run_seed(preset, scripted_models(examples), seed=1, embedder=None, examples=examples)
    assert result.per_seed[1]["seed"] == 1 and result.per_seed[1]["test_points"] == single.test_points()
    assert result.per_seed[1]["run"].best_instructions == single.best_instructions
    fingerprint = hq.make_config(preset).fingerprint()
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {f"hotpotqa-tiny-{fingerprint}-seed{s}" for s in (0, 1)}


def test_data_command_parses_dest_and_out(monkeypatch, tmp_path):
    from polca_nb.benchmarks.hotpotqa import data

    asked = []
    monkeypatch.setattr(data, "download", lambda n, dest: asked.append((n, dest)) or _write(dest))
    monkeypatch.setattr(data, "sha256_of", lambda path: "x")
    assert data.main(["download", "--dest", str(tmp_path)]) == 0
    assert data.main(["download", "--n", "3", "--out", str(tmp_path / "f.json")]) == 0
    assert asked == [(100, tmp_path / hq.DATA_FILE), (3, str(tmp_path / "f.json"))]
    with pytest.raises(SystemExit):  # one place to write, not two
        data.main(["download", "--dest", str(tmp_path), "--out", str(tmp_path / "f.json")])


def _write(dest):
    from pathlib import Path

    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    Path(dest).write_text("[]", encoding="utf-8")
    return Path(dest)


def test_download_without_network_names_the_url(monkeypatch, tmp_path, capsys):
    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    with pytest.raises(ConnectionError, match="https://huggingface.co/datasets/hotpotqa/hotpot_qa") as info:
        hq.download(2, tmp_path / "out.json")
    assert "POLCA_DATA_DIR" in str(info.value) and isinstance(info.value.__cause__, OSError)
    from polca_nb.benchmarks.hotpotqa.data import main

    assert main(["download", "--dest", str(tmp_path)]) == 2
    assert hq.HF_URL in capsys.readouterr().err and not (tmp_path / hq.DATA_FILE).exists()
