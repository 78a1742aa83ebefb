"""Candidate lineage: a run's candidates as a tree (parent -> child), built from its event log.

    tree = lineage(result.events, result.memory)  # plain data: Lineage.nodes, .roots, .best_id
    show_lineage(result)                           # a notebook cell's output: the compact tree
    write_lineage(result)                          # <run_dir>/lineage.html, a standalone page

Every proposal the eps-Net judged is a node, rejected ones included (n=0, mean None); the seed is the
root. A node's `summary` is the context its proposer saw: `iterate` summarizes before it proposes,
and passes that step's summary text to every proposal call of the step, so a node proposed at step t
carries the text of step t's summary event (None when the summarizer is off). `polca(run_dir=...)`
writes lineage.html at the end of a run (`save_lineage`).
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Mapping, Union

from .memory import Memory, best_by_mean
from .runlog import CHECKPOINT, EVENTS, read_events
from .state import RunResult
from .types import Candidate, EvaluationErrors, Params, render_params

__all__ = ["LINEAGE_HTML", "Lineage", "LineageNode", "LineageView", "lineage", "lineage_html", "save_lineage",
           "show_lineage", "write_lineage"]

logger = logging.getLogger(__name__)

Status = Literal["seed", "admitted", "rejected", "budget_drop"]
LINEAGE_HTML = "lineage.html"
MEMORY_SOURCES = ("explore", "validate")
"""The evaluation sources that enter a candidate's history (test and re-evaluation scores do not)."""

Source = Union[RunResult, "Lineage", str, Path]


@dataclass(frozen=True)
class LineageNode:
    """One candidate: where it came from, what the eps-Net said, and its final n and mean.

    `distance` is None when nothing was near (no embedder); `eps` None for a seed. `summary` is the
    summary text its proposer saw (None for a seed or with the summarizer off).
    """

    candidate_id: int
    parent_id: int | None
    step: int
    status: Status
    distance: float | None
    eps: float | None
    n: int
    mean: float | None
    summary: str | None
    params: Params
    children: tuple[int, ...] = ()

    @property
    def preview(self) -> str:
        """The parameters on one line, at most 100 characters."""
        return _clip(" ".join(render_params(self.params).split()), 100)

    @property
    def in_memory(self) -> bool:
        """Seeds and validated admissions are what the memory keeps (rejected and dropped never enter)."""
        return self.status in ("seed", "admitted")


@dataclass(frozen=True)
class Lineage:
    """The tree: nodes by id, the roots (the seed; any node whose parent is unknown) and the best id."""

    nodes: Mapping[int, LineageNode]
    roots: tuple[int, ...]
    best_id: int | None
    problem: str | None = None
    seed: int | None = None

    def __len__(self) -> int:
        return len(self.nodes)

    def counts(self) -> Counter[str]:
        """Nodes per status."""
        return Counter(node.status for node in self.nodes.values())

    def path_to(self, candidate_id: int) -> list[int]:
        """Ids from a root down to `candidate_id` (inclusive)."""
        path = [candidate_id]
        while (parent := self.nodes[path[-1]].parent_id) is not None and parent in self.nodes:
            path.append(parent)
        return path[::-1]

    def walk(self) -> Iterator[tuple[int, LineageNode]]:
        """(depth, node) in pre-order, children by id (iterative: a long chain is no recursion risk)."""
        stack = [(0, self.nodes[r]) for r in reversed(self.roots)]
        while stack:
            depth, node = stack.pop()
            yield depth, node
            stack.extend((depth + 1, self.nodes[c]) for c in reversed(node.children))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _stats(events: Iterable[Mapping[str, Any]], evaluation_errors: EvaluationErrors) -> dict[int, tuple[int, float]]:
    """n and mean per candidate from its explore/validate evaluations, as `Candidate` computes them."""
    scores: dict[int, list[float]] = {}
    for e in events:
        if e.get("type") != "evaluation" or e.get("source") not in MEMORY_SOURCES:
            continue
        if evaluation_errors == "exclude" and e.get("error"):
            continue
        scores.setdefault(int(e["candidate_id"]), []).append(float(e["score"]))
    return {cid: (len(s), math.fsum(s) / len(s)) for cid, s in scores.items()}


def lineage(events: Iterable[Mapping[str, Any]], memory: Memory | None = None, *,
            evaluation_errors: EvaluationErrors = "zero") -> Lineage:
    """The tree of a run's candidates from its events; n and mean from `memory` where it holds them.

    Without `memory`, n and mean are derived from the explore/validate evaluation events (those the
    memory counts); pass the run's `evaluation_errors` policy then. Candidates of `memory` missing from
    the events (a loop chained by hand without a start event) are added from the memory.
    """
    events = list(events)
    start = next((e for e in events if e.get("type") == "start"), None)
    summaries = {int(e["step"]): str(e["text"]) for e in events if e.get("type") == "summary"}
    raw: dict[int, dict[str, Any]] = {}
    if start is not None:
        raw[0] = {"parent_id": None, "step": 0, "status": "seed", "distance": None, "eps": None,
                  "params": dict(start.get("seed_params") or {})}
    for e in events:
        kind = e.get("type")
        if kind in ("admission", "rejection"):
            distance = e.get("distance")
            raw[int(e["candidate_id"])] = {
                "parent_id": e.get("parent_id"), "step": int(e["step"]),
                "status": "admitted" if kind == "admission" else "rejected",
                "distance": None if distance is None else float(distance), "eps": float(e["eps"]),
                "params": dict(e.get("params") or {})}
        elif kind == "budget_drop" and int(e["candidate_id"]) in raw:
            raw[int(e["candidate_id"])]["status"] = "budget_drop"
    candidates: Mapping[int, Candidate] = memory.candidates if memory is not None else {}
    for cid, c in candidates.items():
        if cid not in raw:
            raw[cid] = {"parent_id": c.parent_id, "step": c.step_created, "distance": None, "eps": None,
                        "status": "seed" if c.parent_id is None else "admitted", "params": dict(c.params)}
    derived = _stats(events, evaluation_errors)
    children: dict[int, list[int]] = {}
    for cid, r in raw.items():
        if r["parent_id"] is not None and r["parent_id"] in raw:
            children.setdefault(r["parent_id"], []).append(cid)
    nodes: dict[int, LineageNode] = {}
    for cid in sorted(raw):
        r = raw[cid]
        if cid in candidates:
            n, mean = candidates[cid].n, candidates[cid].mean
        else:
            n, mean = derived.get(cid, (0, None))
        summary = None if r["status"] == "seed" else summaries.get(r["step"])
        nodes[cid] = LineageNode(cid, r["parent_id"], r["step"], r["status"], r["distance"], r["eps"], n, mean,
                                 summary, r["params"], tuple(sorted(children.get(cid, ()))))
    roots = tuple(cid for cid, node in nodes.items() if node.parent_id is None or node.parent_id not in nodes)
    best = best_by_mean(memory) if memory is not None and len(memory) else None
    if best is not None:
        best_id: int | None = best.id
    else:  # best_by_mean's rule over the nodes the memory keeps
        kept = [node for node in nodes.values() if node.in_memory]
        best_id = max(kept, key=lambda nd: (nd.mean if nd.mean is not None else -math.inf, nd.step,
                                            nd.candidate_id)).candidate_id if kept else None
    return Lineage(nodes, roots, best_id, start.get("problem") if start else None,
                   start.get("seed") if start else None)


def _memory_of(run_dir: Path) -> Memory | None:
    path = run_dir / CHECKPOINT
    if not path.exists():
        return None
    state = json.loads(path.read_text(encoding="utf-8")).get("state") or {}
    return Memory({int(c["id"]): Candidate.from_dict(c) for c in state.get("memory", ())})


def _run_dir_events(run_dir: Path) -> list[dict[str, Any]]:
    events = read_events(run_dir / EVENTS)
    if not events:
        raise ValueError(f"{run_dir} holds no run: no events in {run_dir / EVENTS} (is it the run_dir "
                         "given to polca()?)")
    return events


def _as_lineage(source: Source) -> Lineage:
    if isinstance(source, Lineage):
        return source
    if isinstance(source, RunResult):
        return lineage(source.events, source.memory)
    run_dir = Path(source)
    return lineage(_run_dir_events(run_dir), _memory_of(run_dir))


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _verdict(node: LineageNode) -> str:
    """'admitted d=1.000 (eps 0.5)' and the like: the status with its eps-Net distance."""
    if node.status == "seed":
        return "seed"
    label = {"admitted": "admitted", "rejected": "rejected", "budget_drop": "dropped (budget)"}[node.status]
    sign = " ≤ " if node.status == "rejected" else ", "
    return f"{label} d={_num(node.distance)}{sign}ε={node.eps:g}" if node.eps is not None else label


def _stats_text(node: LineageNode) -> str:
    return f"n={node.n} mean={_num(node.mean)}" if node.n else "n=0"


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em 2em;color:#1d2330;background:#fff}
h1{font-size:1.35em;margin:0 0 .3em}
.meta{color:#5b6475}.legend span{margin-right:1em}
details{margin:.1em 0}details>summary{cursor:pointer;list-style:none;padding:.1em .3em;border-radius:4px;
white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
details>summary::-webkit-details-marker{display:none}
details>summary::before{content:"▸";display:inline-block;width:1em;color:#8a93a5}
details[open]>summary::before{content:"▾"}
details.leaf>summary::before{content:"•"}
summary:hover{background:#f1f4f9}
.kids{margin-left:.55em;padding-left:.9em;border-left:1px solid #d5dae3}.kids.flat{margin-left:0;padding-left:0}
.id{font-weight:600;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:0 .45em;border-radius:9px;font-size:.85em;margin:0 .3em}
.b-seed{background:#dce8fb;color:#1a4d8f}.b-admitted{background:#dcf3e3;color:#1d6b38}
.b-rejected{background:#fbe2e2;color:#a12626}.b-budget_drop{background:#fdebd3;color:#8a5200}
.stats{font-variant-numeric:tabular-nums}.gen,.step{color:#8a93a5;font-size:.85em;margin-left:.4em}
.preview{color:#5b6475;margin-left:.6em;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em}
.rejected>summary,.budget_drop>summary,.rgroup>summary{color:#7d8494}
.best>summary{background:#fff3bf;font-weight:600}.star{color:#b8860b;margin-left:.4em}
.info{margin:.2em 0 .5em 1.4em;padding:.5em .7em;background:#f7f8fb;border:1px solid #e3e7ee;border-radius:6px}
.info .label{color:#5b6475;font-size:.85em;margin:.2em 0}
.info blockquote{margin:.1em 0 .5em;padding:.3em .6em;border-left:3px solid #b9c3d6;white-space:pre-wrap}
.info pre{margin:.1em 0;white-space:pre-wrap;word-break:break-word;font-size:.85em;max-height:24em;overflow:auto}
.infobox>summary{color:#8a93a5;font-size:.8em;padding:0 .3em}
"""
_FLAT_DEPTH = 16  # deeper nodes stop indenting (their "gen" label still tells the depth)


def _line(node: LineageNode, depth: int, best: bool) -> str:
    star = '<span class="star">★ best</span>' if best else ""
    return (f'<span class="id">#{node.candidate_id}</span><span class="badge b-{node.status}">'
            f'{html.escape(_verdict(node))}</span><span class="stats">{_stats_text(node)}</span>{star}'
            f'<span class="step">step {node.step}</span><span class="gen">gen {depth}</span>'
            f'<span class="preview">{html.escape(node.preview)}</span>')


def _info(node: LineageNode, max_chars: int) -> str:
    if node.status == "seed":
        context = '<div class="label">the seed program</div>'
    elif node.summary is None:
        context = (f'<div class="label">proposed at step {node.step} from #{node.parent_id}, '
                   'with no summary (summarizer off)</div>')
    else:
        context = (f'<div class="label">proposed at step {node.step} from #{node.parent_id}, under the '
                   f'summary:</div><blockquote>{html.escape(node.summary)}</blockquote>')
    text = render_params(node.params)
    more = f"\n… ({len(text) - max_chars} more characters)" if len(text) > max_chars else ""
    return (f'<div class="info">{context}<div class="label">parameters</div>'
            f'<pre>{html.escape(text[:max_chars] + more)}</pre></div>')


def _leaf(node: LineageNode, depth: int, best: bool, max_chars: int) -> str:
    return (f'<details class="leaf {node.status}{" best" if best else ""}"><summary>{_line(node, depth, best)}'
            f'</summary>{_info(node, max_chars)}</details>')


def _rejected_group(nodes: list[LineageNode], depth: int, max_chars: int) -> str:
    ids = ", ".join(f"#{nd.candidate_id}" for nd in nodes[:12]) + (", …" if len(nodes) > 12 else "")
    distances = [nd.distance for nd in nodes if nd.distance is not None]
    span = f" (d {min(distances):.3f}–{max(distances):.3f})" if distances else ""
    rows = "".join(_leaf(nd, depth, False, max_chars) for nd in nodes)
    return (f'<details class="rgroup"><summary>{len(nodes)} rejected{span}: {ids}</summary>'
            f'<div class="kids">{rows}</div></details>')


def _tree(tree: Lineage, open_depth: int, max_chars: int) -> str:
    on_path = set(tree.path_to(tree.best_id)) if tree.best_id is not None else set()
    out: list[str] = []
    stack: list[tuple[int, int] | str] = [(r, 0) for r in reversed(tree.roots)]
    while stack:  # iterative: a chain hundreds of generations deep is no recursion risk
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        cid, depth = item
        node, best = tree.nodes[cid], cid == tree.best_id
        kids = [tree.nodes[c] for c in node.children]
        rejected = [k for k in kids if k.status == "rejected" and not k.children]
        shown = [k for k in kids if not (k.status == "rejected" and not k.children)]
        if not kids:
            out.append(_leaf(node, depth, best, max_chars))
            continue
        opened = " open" if depth < open_depth or cid in on_path else ""
        out.append(f'<details class="node {node.status}{" best" if best else ""}"{opened}><summary>'
                   f'{_line(node, depth, best)}</summary><details class="infobox"><summary>parameters and '
                   f'summary</summary>{_info(node, max_chars)}</details>'
                   f'<div class="kids{" flat" if depth + 1 >= _FLAT_DEPTH else ""}">')
        stack.append("</div></details>")
        if rejected:
            stack.append(_rejected_group(rejected, depth + 1, max_chars))
        stack.extend((k.candidate_id, depth + 1) for k in reversed(shown))
    return "".join(out)


def _headline(tree: Lineage) -> str:
    counts = tree.counts()
    parts = [f"{len(tree)} candidates: {counts['admitted']} admitted, {counts['rejected']} rejected by the eps-Net"]
    if counts["budget_drop"]:
        parts.append(f"{counts['budget_drop']} admitted but dropped for budget")
    if tree.best_id is not None:
        best = tree.nodes[tree.best_id]
        path = " → ".join(f"#{c}" for c in tree.path_to(tree.best_id))
        parts.append(f"best by mean #{best.candidate_id} (mean {_num(best.mean)} over n={best.n}): {path}")
    return "; ".join(parts)


def _default_title(tree: Lineage) -> str:
    what = f"{tree.problem} run" if tree.problem else "run"
    return f"Candidate lineage of the {what}" + (f" (seed {tree.seed})" if tree.seed is not None else "")


def lineage_html(tree: Lineage, *, title: str | None = None, open_depth: int = 2, max_chars: int = 20_000) -> str:
    """A standalone HTML page of the tree (inline CSS, no script, no network), every text escaped.

    Nodes are nested <details>, open above `open_depth` and along the path to the best candidate;
    each parent's rejected leaves fold into one line; parameters beyond `max_chars` are cut.
    """
    title = title or _default_title(tree)
    legend = "".join(f'<span class="badge b-{s}">{label}</span>' for s, label in (
        ("seed", "seed"), ("admitted", "admitted: d > ε"), ("rejected", "rejected: d ≤ ε"),
        ("budget_drop", "admitted, dropped for budget")))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>'
            f'<h1>{html.escape(title)}</h1><p class="meta">{html.escape(_headline(tree))}</p>'
            f'<p class="meta legend">{legend} d: eps-Net distance to the nearest kept candidate; n, mean: '
            f'the rollouts in memory; click a line for its parameters and the summary it was proposed under.'
            f'</p>{_tree(tree, open_depth, max_chars)}</body></html>\n')


def write_lineage(source: RunResult | str | Path, *, title: str | None = None) -> Path:
    """Write `lineage.html` into the run directory (of a RunResult, or a run_dir path); returns its path.

    ValueError when there is no run directory or it holds no event log.
    """
    if isinstance(source, RunResult):
        if source.run_dir is None:
            raise ValueError("write_lineage: this RunResult has no run directory (polca() ran with "
                             "run_dir=None); pass run_dir= to polca(), or write lineage_html(lineage("
                             "result.events, result.memory)) yourself")
        run_dir = Path(source.run_dir)
    else:
        run_dir = Path(source)
        if not run_dir.is_dir():
            raise ValueError(f"write_lineage: {run_dir} is not a run directory (no such directory)")
    page = lineage_html(_as_lineage(source), title=title)
    path = run_dir / LINEAGE_HTML
    path.write_text(page, encoding="utf-8")
    return path


def save_lineage(result: RunResult) -> RunResult:
    """`result`, after writing its lineage.html when it has a run directory (polca's last step).

    A failure is logged, never raised: a finished run's result is worth more than its picture.
    """
    if result.run_dir is not None:
        try:
            write_lineage(result)
        except Exception as exc:  # noqa: BLE001 - the view must never cost a run its result
            logger.warning("could not write %s in %s: %r", LINEAGE_HTML, result.run_dir, exc)
    return result


_COLOURS = {"seed": "#1a4d8f", "admitted": "#1d6b38", "rejected": "#a12626", "budget_drop": "#8a5200",
            "best": "#1d2330", "more": "#7d8494"}


@dataclass(frozen=True)
class LineageView:
    """A compact tree for a notebook cell (`_repr_html_`) or a terminal (`str`): at most `max_rows` lines."""

    headline: str
    rows: tuple[tuple[int, str, str], ...]  # (depth, text, status or "best" or "more")

    def __str__(self) -> str:
        return "\n".join([self.headline] + ["  " * depth + text for depth, text, _ in self.rows])

    def _repr_html_(self) -> str:
        lines = [f'<div style="font:12px/1.4 ui-monospace,Menlo,Consolas,monospace">'
                 f'<div style="margin-bottom:.3em">{html.escape(self.headline)}</div>']
        for depth, text, kind in self.rows:
            extra = "background:#fff3bf;font-weight:600;" if kind == "best" else ""
            lines.append(f'<div style="padding-left:{min(depth, _FLAT_DEPTH) * 1.2}em;color:'
                         f'{_COLOURS.get(kind, "#1d2330")};{extra}white-space:pre">{html.escape(text)}</div>')
        return "".join(lines) + "</div>"


def show_lineage(source: Source, *, max_rows: int = 40) -> LineageView:
    """The tree of a RunResult (or Lineage, or run_dir) as a notebook cell's output, rejected leaves
    folded into one line per parent and at most `max_rows` lines (the rest counted)."""
    tree = _as_lineage(source)
    rows: list[tuple[int, str, str]] = []
    stack: list[tuple[int, LineageNode | list[LineageNode]]] = [(0, tree.nodes[r]) for r in reversed(tree.roots)]
    while stack:
        depth, item = stack.pop()
        if isinstance(item, list):
            d = [nd.distance for nd in item if nd.distance is not None]
            span = f" d≤{max(d):.3f}" if d else ""
            ids = " ".join(f"#{nd.candidate_id}" for nd in item[:8]) + (" …" if len(item) > 8 else "")
            rows.append((depth, f"× {len(item)} rejected{span}: {ids}", "rejected"))
            continue
        best = item.candidate_id == tree.best_id
        kind = "best" if best else item.status
        rows.append((depth, f"#{item.candidate_id} {_verdict(item)} {_stats_text(item)}"
                            f"{' ★ best' if best else ''}  {_clip(item.preview, 60)}", kind))
        kids = [tree.nodes[c] for c in item.children]
        rejected = [k for k in kids if k.status == "rejected" and not k.children]
        if rejected:
            stack.append((depth + 1, rejected))
        stack.extend((depth + 1, k) for k in reversed(kids) if not (k.status == "rejected" and not k.children))
    if len(rows) > max_rows:
        more = len(rows) - max_rows
        rows = rows[:max_rows] + [(0, f"… {more} more lines (write_lineage(result) writes the whole tree)", "more")]
    return LineageView(_headline(tree), tuple(rows))
