"""The README and the guides in docs/ say what the code does: every ``tuner`` command in their shell blocks parses
with the real command-line parser, every study file they name exists and validates, every whole study they show
validates, every repository path they name exists, every relative link (and its #anchor) resolves, and the README
stays a front door (at most 250 lines, the two commands CI runs, a link to every guide). No Ray, nothing trained;
only the validation of each named study file is marked slow (the fast tests cover it, see there).

Placeholders in commands (``STUDY``, ``DIR``, ``HEAD:6379``, ``PASSWORD``, ...) are replaced with sample values
before parsing; ``[--option VALUE]`` brackets are not used in shell blocks, whose lines are meant to be runnable.
"""

import re
import shlex
from pathlib import Path

import pytest

from tuner.cli import parser
from tuner.study_file import load_study

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
GUIDES = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *GUIDES, REPO / "CHANGELOG.md"]
CI_COMMANDS = ("pip install -e . && tuner run studies/quickstart.yaml", 'pip install -e ".[test]" && pytest')
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}
FENCE = re.compile(r"^\s*```\s*([\w+-]*)")
# placeholder -> sample value, longest first (HEAD_PRIVATE_IP before HEAD)
PLACEHOLDERS = {
    "STUDY.yaml": "studies/quickstart.yaml",
    "HEAD_PRIVATE_IP": "10.0.0.1",
    "PASSWORD": "secret",
    "STUDY": "quickstart",
    "BEFORE": "quickstart",
    "AFTER": "quickstart",
    "FILE": "studies/quickstart.yaml",
    "ADDR": "10.0.0.1:6379",
    "HEAD": "10.0.0.1",
    "PORT": "5000",
    "DIR": "/tmp/dir",
    "URL": "https://mirror.example/data/",
    "NAME": "smoke",
}
STUDY_PATH = re.compile(r"(?<![\w./-])studies/([\w.-]+)\.ya?ml\b")
REPO_PATH = re.compile(
    r"(?<![\w./-])((?:benchmarks|examples|tasks|losses|tuner|tests|registry|docs|studies)/[\w./-]*?\.(?:py|yaml|toml|md|png))\b"
)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def blocks(path: Path) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """(the fenced blocks as (info string, lines), the lines outside them)."""
    fenced, prose, current = [], [], None
    for line in path.read_text().splitlines():
        match = FENCE.match(line)
        if match and current is None:
            current = (match[1].lower(), [])
        elif match and current is not None:
            fenced.append(current)
            current = None
        elif current is not None:
            current[1].append(line)
        else:
            prose.append(line)
    assert current is None, f"{path.name}: a fenced block is not closed"
    return fenced, prose


def without_comment(line: str) -> str:
    """The line up to an unquoted ``#`` that starts a word (bash's rule; ``http://h/#/x`` keeps its ``#``)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def commands(line: str) -> list[list[str]]:
    """The simple commands of one shell line, split at ``&&``, ``||``, ``;`` and ``|``, as argument lists."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = ""
    parts, current = [], []
    for token in lexer:
        if token and set(token) <= set(";&|"):
            parts.append(current)
            current = []
        else:
            current.append(token)
    return [p for p in [*parts, current] if p]


def substituted(text: str) -> str:
    pattern = r"(?<![\w])(" + "|".join(re.escape(k) for k in PLACEHOLDERS) + r")(?![\w])"
    return re.sub(pattern, lambda m: PLACEHOLDERS[m[1]], text)


def shell_lines(path: Path) -> list[str]:
    """Every command line of the page's shell blocks: continuations joined, prompts and comments dropped."""
    lines = []
    for info, body in blocks(path)[0]:
        if info not in SHELL_FENCES:
            continue
        joined = ""
        for raw in body:
            text = without_comment(raw).rstrip()
            if text.endswith("\\"):
                joined += text[:-1] + " "
                continue
            joined = (joined + text).strip().removeprefix("$ ")
            if joined:
                lines.append(joined)
            joined = ""
    return lines


def tuner_commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for line in shell_lines(page):
            for command in commands(substituted(line)):
                if command[0] == "tuner":
                    found.append((f"{page.name}: {line}", command[1:]))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lower-cased, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"`|\*\*?|_(?=\w)", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen, found = {}, set()
    for line in blocks(path)[1]:
        match = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match[2])
            found.add(base if base not in seen else f"{base}-{seen[base]}")
            seen[base] = seen.get(base, 0) + 1
    return found


def mentioned(pattern: re.Pattern) -> list[str]:
    """What the README and the guides name (CHANGELOG.md may name what is gone)."""
    return sorted({m[0] for page in [README, *GUIDES] for m in pattern.finditer(page.read_text())})


STUDIES = [p for p in mentioned(STUDY_PATH) if not Path(p).stem.isupper()]  # studies/X.yaml is a placeholder


def test_the_readme_is_a_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; the manual belongs in docs/"
    for command in CI_COMMANDS:  # .ci/run and fresh clones run these exact lines
        assert any(line.startswith(command) for line in lines), command
    linked = {m[1].split("#")[0] for m in LINK.finditer(README.read_text())}
    assert {f"docs/{g.name}" for g in GUIDES} <= linked, "every guide in docs/ is linked from the README"


def test_no_issue_numbers_in_the_readme_or_the_guides():
    for page in [README, *GUIDES]:
        found = re.findall(r"\bissues? \d+", page.read_text(), flags=re.IGNORECASE)
        assert not found, f"{page.name}: {found} (history goes to CHANGELOG.md)"


def test_every_tuner_command_in_the_docs_parses():
    found = tuner_commands()
    assert len(found) >= 20, f"only {len(found)} tuner commands found: is the block parser broken?"
    failed = []
    for where, args in found:
        try:
            parsed = parser().parse_args(args)
        except SystemExit:
            failed.append(where)
            continue
        assert callable(parsed.handler), where
    assert not failed, "these commands do not parse with tuner.cli.parser():\n" + "\n".join(failed)


def test_the_placeholder_substitution_keeps_paths_and_urls_apart():
    assert substituted("tuner resume STUDY --storage DIR") == "tuner resume quickstart --storage /tmp/dir"
    assert substituted("--address HEAD:6379 --mlflow-uri http://HEAD_PRIVATE_IP:5000") == (
        "--address 10.0.0.1:6379 --mlflow-uri http://10.0.0.1:5000"
    )
    assert commands("tuner report x; tuner dashboard y && echo 'a;b'") == [
        ["tuner", "report", "x"],
        ["tuner", "dashboard", "y"],
        ["echo", "a;b"],
    ]
    assert without_comment("tuner ui q   # prints http://127.0.0.1:5000/#/experiments") == "tuner ui q   "


def test_every_study_file_named_is_shipped():
    assert len(STUDIES) >= 10
    missing = [p for p in STUDIES if not (REPO / p).is_file()]
    assert not missing, f"named in the docs but not in the repository: {missing}"
    shipped = {f"studies/{p.name}" for p in (REPO / "studies").glob("*.yaml")}
    assert shipped <= set(STUDIES), f"not described anywhere in the docs: {sorted(shipped - set(STUDIES))}"


@pytest.mark.slow  # table4_lambda_selection alone checks 1 360 trial configs: 36 s on this 2-core machine
@pytest.mark.parametrize("path", STUDIES)
def test_every_study_file_named_validates(path):
    """Each study file the docs name, validated as ``tuner validate`` does. The fast tests cover this too: the one
    above holds the named files to be the shipped ones, and tests/tuner/test_study.py validates every shipped one."""
    if not (REPO / path).is_file():
        pytest.fail(f"{path} does not exist")
    load_study(REPO / path)


def test_every_whole_study_shown_in_the_guides_validates(tmp_path):
    """A YAML block with a name and a task is a study file as a user would copy it: it must validate, every scale."""
    shown = [body for page in [README, *GUIDES] for info, body in blocks(page)[0] if info in ("yaml", "yml")]
    studies = [body for body in shown if any(line.startswith("name:") for line in body)]
    assert studies, "docs/studies.md shows a whole study file"
    for i, body in enumerate(studies):
        path = tmp_path / f"shown{i}.yaml"
        path.write_text("\n".join(body) + "\n")
        for scale in [None, *load_study(path).scales]:
            load_study(path, scale)


def test_every_repository_path_named_exists():
    missing = [p for p in mentioned(REPO_PATH) if not Path(p).stem.isupper() and not (REPO / p).exists()]
    assert not missing, f"named in the docs but not in the repository: {missing}"


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        for match in LINK.finditer(page.read_text()):
            target = match[1]
            if re.match(r"^[a-z][a-z+.-]*:", target):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            resolved = (page.parent / file) if file else page
            if not resolved.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
