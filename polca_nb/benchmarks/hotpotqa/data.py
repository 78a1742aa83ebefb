"""HotpotQA data: the paper's 100 distractor tasks, their loader and the downloader.

Data: `hotpotqa/hotpot_dev_distractor_first100.json` under `polca_nb.data.data_dir()`, or
`python -m polca_nb.benchmarks.hotpotqa.data download [--dest DIR]` (the older
`python -m polca_nb.benchmarks.hotpotqa download` still works; both need `datasets` and internet).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ...data import ENV_VAR, PROJECT_ROOT, data_dir, download_dir
from ...types import Example

DATA_FILE = "hotpotqa/hotpot_dev_distractor_first100.json"
DATA_SHA256 = "32ed3ffab548f1d57ba65365bd581d17b428980fa7be881ab0c45f79d9fe6827"
"""sha256 of the shared file (the paper's 100 tasks); the downloader reproduces it byte for byte."""
PAPER_NUM_EXAMPLES = 100
PAPER_NUM_VALIDATION = 10
"""Validation set = the first 10 tasks: the harness's `--num_validate_samples` default, which the paper's
command leaves unset (polca-method.md §3: "train first 100, val first 10 (default), test 100")."""
HF_DATASET = "hotpotqa/hotpot_qa"
HF_CONFIG = "distractor"
HF_SPLIT = "validation"
HF_URL = f"https://huggingface.co/datasets/{HF_DATASET}"
DOWNLOAD_COMMAND = "python -m polca_nb.benchmarks.hotpotqa download"
RECORD_KEYS = ("question", "answer", "type", "level", "supporting_facts", "context")

TRAILING_PUNCTUATION = ".,!?;:"
"""Dropped from the end of an answer before comparing (the harness's normalisation)."""


@dataclass(frozen=True)
class HotpotQuestion:
    """One HotpotQA distractor task: the question, gold answer and its ten (title, sentences) paragraphs."""

    question: str
    answer: str
    titles: tuple[str, ...]
    sentences: tuple[tuple[str, ...], ...]
    supporting_titles: tuple[str, ...] = ()
    kind: str = ""
    level: str = ""

    def __post_init__(self) -> None:
        if not self.question.strip():
            raise ValueError(f"HotpotQuestion.question must be non-empty, got {self.question!r}")
        if not _normalize(self.answer):
            raise ValueError(f"HotpotQuestion.answer must be non-empty after normalisation, got {self.answer!r}")
        if len(self.titles) != len(self.sentences):
            raise ValueError(f"HotpotQuestion.titles has {len(self.titles)} entries but sentences has "
                             f"{len(self.sentences)}")

    def paragraphs(self, max_paragraphs: int | None = None) -> list[tuple[str, tuple[str, ...]]]:
        """The (title, sentences) paragraphs shown to the model, in the data's order.

        `max_paragraphs=None` keeps all ten (the paper). A smaller number keeps every supporting
        paragraph (so the question stays answerable) and fills up with the earliest distractors.
        """
        pairs = list(zip(self.titles, self.sentences))
        if max_paragraphs is None or max_paragraphs >= len(pairs):
            return pairs
        if max_paragraphs < 1:
            raise ValueError(f"max_paragraphs must be >= 1 or None, got {max_paragraphs!r}")
        supporting = {i for i, (title, _) in enumerate(pairs) if title in self.supporting_titles}
        distractors = [i for i in range(len(pairs)) if i not in supporting]
        keep = supporting | set(distractors[: max(0, max_paragraphs - len(supporting))])
        return [pairs[i] for i in sorted(keep)]

    def context(self, max_paragraphs: int | None = None) -> str:
        return format_context(self.paragraphs(max_paragraphs))


def format_context(paragraphs: Sequence[tuple[str, Sequence[str]]]) -> str:
    """`Paragraph {j+1} ({title}):` then the paragraph's sentences joined by spaces; blank line between."""
    return "\n\n".join(f"Paragraph {j + 1} ({title}):\n{' '.join(sentences)}"
                       for j, (title, sentences) in enumerate(paragraphs))


def parse_record(record: Mapping[str, Any], index: int) -> HotpotQuestion:
    """One record of the HF schema (question, answer, type, level, supporting_facts, context)."""
    try:
        context = record["context"]
        return HotpotQuestion(
            question=str(record["question"]),
            answer=str(record["answer"]),
            titles=tuple(str(t) for t in context["title"]),
            sentences=tuple(tuple(str(s) for s in para) for para in context["sentences"]),
            supporting_titles=tuple(dict.fromkeys(str(t) for t in record.get("supporting_facts", {}).get("title", []))),
            kind=str(record.get("type", "")),
            level=str(record.get("level", "")),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"HotpotQA record {index} is malformed ({type(exc).__name__}: {exc}); expected the HF "
                         f"schema with keys {RECORD_KEYS}") from exc


def data_file(path: str | Path | None = None) -> Path:
    """The data file: `path` if given, else the data directory's copy, else the project's data/ folder
    (where the downloader writes). FileNotFoundError names both ways to get it."""
    if path is not None:
        candidates = [Path(path)]
    else:
        candidates = list(dict.fromkeys([data_dir() / DATA_FILE, PROJECT_ROOT / "data" / DATA_FILE]))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"HotpotQA data not found (looked in: {looked}). Either set {ENV_VAR} to a data folder that holds "
        f"'{DATA_FILE}' (the shared data folder ../shared/data has it), or download the paper's 100 examples "
        f"with: {DOWNLOAD_COMMAND}  (needs `pip install datasets` and internet access)"
    )


def load_examples(n: int = PAPER_NUM_EXAMPLES, *, path: str | Path | None = None) -> list[Example]:
    """The first `n` examples (ids hotpot000, hotpot001, ...) in the file's order, which is the paper's."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n (number of HotpotQA examples) must be a positive int, got {n!r}")
    records = json.loads(data_file(path).read_text(encoding="utf-8"))
    if not isinstance(records, list):
        raise ValueError(f"HotpotQA data must be a JSON list of records, got {type(records).__name__}")
    if n > len(records):
        raise ValueError(f"n={n} is more than the {len(records)} examples in the HotpotQA data file")
    return [Example(f"hotpot{i:03d}", parse_record(records[i], i)) for i in range(n)]


def _normalize(text: str) -> str:
    return text.lower().strip().rstrip(TRAILING_PUNCTUATION)


# --- download --------------------------------------------------------------------------------------
def download(n: int = PAPER_NUM_EXAMPLES, dest: str | Path | None = None) -> Path:
    """Write the first `n` HF `hotpot_qa` distractor validation examples in the shared file's format
    (streamed, so the 600 MB dataset is not fetched) to the file `dest` (default: the data folder's
    copy). Needs `datasets` and internet access: without `datasets` ModuleNotFoundError, and when the
    stream from the Hub fails, ConnectionError naming `HF_URL` (the original error as its cause)."""
    try:
        import datasets  # noqa: PLC0415 - optional, online-only dependency
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "the HotpotQA downloader needs the optional package `datasets` (pip install datasets) and internet "
            f"access; offline, point {ENV_VAR} at a folder holding {DATA_FILE} instead") from exc
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n (number of examples to download) must be a positive int, got {n!r}")
    try:
        stream = datasets.load_dataset(HF_DATASET, HF_CONFIG, split=HF_SPLIT, streaming=True)
        rows = list(itertools.islice(stream, n))
    except Exception as exc:  # offline, the Hub's errors vary (requests, httpx, datasets' own)
        raise ConnectionError(
            f"could not stream the HotpotQA examples ({HF_DATASET}, {HF_CONFIG}, split {HF_SPLIT}) from {HF_URL}: "
            f"{type(exc).__name__}: {exc}. The downloader needs internet access; offline, point {ENV_VAR} at a "
            f"folder holding {DATA_FILE} instead") from exc
    records = [_hf_record(row) for row in rows]
    text = json.dumps(records, indent=2, ensure_ascii=False)
    target = Path(dest) if dest is not None else download_dir() / DATA_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def _hf_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """An HF row in the shared file's key order, without the `id` the shared file lacks."""
    sf, ctx = row["supporting_facts"], row["context"]
    return {
        "question": row["question"],
        "answer": row["answer"],
        "type": row["type"],
        "level": row["level"],
        "supporting_facts": {"title": list(sf["title"]), "sent_id": [int(i) for i in sf["sent_id"]]},
        "context": {"title": list(ctx["title"]), "sentences": [list(s) for s in ctx["sentences"]]},
    }


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()



def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polca_nb.benchmarks.hotpotqa",
                                     description="HotpotQA data for polca_nb.")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("download", help="fetch the paper's first-100 distractor validation examples")
    get.add_argument("--n", type=int, default=PAPER_NUM_EXAMPLES, help="how many examples (default 100)")
    where = get.add_mutually_exclusive_group()
    where.add_argument("--out", default=None, help=f"output file (default <data dir>/{DATA_FILE})")
    where.add_argument("--dest", default=None, metavar="DIR",
                       help=f"data folder to write DIR/{DATA_FILE} into (what {ENV_VAR}=DIR reads)")
    args = parser.parse_args(argv)
    out = Path(args.dest) / DATA_FILE if args.dest is not None else args.out
    try:
        path = download(args.n, out)
    except (ModuleNotFoundError, ConnectionError) as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    digest = sha256_of(path)
    print(f"wrote {args.n} examples to {path}")
    if args.n == PAPER_NUM_EXAMPLES:
        same = digest == DATA_SHA256
        print(f"sha256 {digest}: " + ("identical to the paper's 100-task file" if same else
                                      f"differs from the paper's file ({DATA_SHA256}); the HF revision may differ"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
