"""The TextMate grammar and VS Code manifest in editors/vscode: valid JSON that points at files that exist,
every keyword and dtype of the language covered, and the patterns, run the way a TextMate engine runs them
(earliest match wins, first listed on a tie), scope a model's tokens as intended."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from dlc.ir import DTYPES

ROOT = Path(__file__).resolve().parent.parent
VSCODE = ROOT / "editors" / "vscode"
GRAMMAR = json.loads((VSCODE / "syntaxes" / "dlm.tmLanguage.json").read_text(encoding="utf-8"))


def flat_patterns(patterns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in patterns:
        if "include" in p:
            out += flat_patterns([GRAMMAR["repository"][p["include"].lstrip("#")]])
        elif "patterns" in p:
            out += flat_patterns(p["patterns"])
        else:
            out.append(p)
    return out


PATTERNS = [(re.compile(p["match"]), p) for p in flat_patterns(GRAMMAR["patterns"])]


def scopes(line: str) -> dict[str, str]:
    """Text -> scope of each token of one line, the way a TextMate engine scans single-line matches."""
    found: dict[str, str] = {}
    pos = 0
    while pos < len(line):
        best = None
        for regex, p in PATTERNS:
            m = regex.search(line, pos)
            if m and (best is None or m.start() < best[0].start()):
                best = (m, p)
        if best is None:
            break
        m, p = best
        if "name" in p:
            found[m.group()] = p["name"]
        for index, capture in p.get("captures", {}).items():
            if m.group(int(index)) is not None:
                found[m.group(int(index))] = capture["name"]
        pos = max(m.end(), pos + 1)
    return found


def test_manifest_points_at_the_grammar() -> None:
    manifest = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    language = manifest["contributes"]["languages"][0]
    grammar = manifest["contributes"]["grammars"][0]
    assert language["extensions"] == [".dlm"] and grammar["language"] == language["id"] == "dlm"
    assert grammar["scopeName"] == GRAMMAR["scopeName"] == "source.dlm"
    assert (VSCODE / grammar["path"]).is_file() and (VSCODE / language["configuration"]).is_file()
    config = json.loads((VSCODE / language["configuration"]).read_text(encoding="utf-8"))
    assert config["comments"]["lineComment"] == "#"


def test_every_keyword_and_dtype_is_highlighted() -> None:
    grammar_text = (ROOT / "grammar" / "dlm.lark").read_text(encoding="utf-8")
    keywords = set(re.findall(r'"([a-z]+)"', grammar_text))
    assert keywords >= {"input", "param", "output", "block", "train", "import", "repeat", "true"}
    for word in keywords:
        scope = scopes(f"{word} ").get(word, "")
        assert scope.startswith(("keyword", "storage", "constant")), (word, scope)
    for dtype in DTYPES:
        assert scopes(f"input x: {dtype}[N]")[dtype] == "support.type.dtype.dlm"


def test_a_model_line_is_scoped() -> None:
    got = scopes('h = dense(x, 64, init="he_uniform") |> relu  # hidden layer')
    assert got["dense"] == "entity.name.function.call.dlm"
    assert got["init"] == "variable.parameter.dlm"
    assert got['"he_uniform"'] == "string.quoted.double.dlm"
    assert got["64"] == "constant.numeric.dlm"
    assert got["|>"] == "keyword.operator.pipe.dlm"
    assert got["# hidden layer"] == "comment.line.number-sign.dlm"
    assert scopes("input x: f32[N, 64]")["x"] == "variable.other.declaration.dlm"
    assert scopes("block residual(x, width: int) {")["residual"] == "entity.name.function.dlm"
    assert "h1" not in scopes("y = h1 + 2.5e-3")  # digits inside a name are not a number


def test_comments_in_every_model_are_comments() -> None:
    for path in (ROOT / "models").glob("*.dlm"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith("#"):
                assert scopes(line)[line.strip()] == "comment.line.number-sign.dlm", (path.name, line)
