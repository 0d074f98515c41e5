"""Every code block and command of README.md (and docs/*.md) runs in the test suite.

What runs:

* every ```python block, each in a fresh namespace (blocks are self-contained);
* every shell command: the lines of the ```bash blocks (a ``name=value`` line sets a variable
  for the lines below it) and the inline spans that start with ``jaxlike``, ``python``,
  ``pytest`` or ``pip`` (except the names in :data:`MENTIONS`, which name a verb, not a
  command);
* a ```toml block whose first line is ``# NAME.toml`` is the file ``NAME.toml`` the commands
  around it read.

Where: in a scratch *repository root*, a temporary folder ``main/`` beside ``shared/data`` (a
link to the test data, ``conftest.DATA``, i.e. ``$JAXLIKE_DATA``), with links to the
repository's own folders (``benchmarks``, ``.ci``, ...). So the README writes paths as a
newcomer types them at the repository root (``../shared/data/atlas_erjr/BkgOnly.json``,
``alp_scan/scan.h5``), and what the examples write lands in the scratch folder, never in the
checkout. ``jaxlike`` commands run in this process (compiled programs are shared with the
Python blocks on the same models); other commands run in ``bash``.

Checks: a Python line whose comment holds ``→ numbers`` (or ``True``/``False``) must give
those numbers (the expression's value, or the names it assigns) to the printed digits; a
command whose comment shows JSON (``{"CLs_obs": 0.05929, ...}``) must print JSON with those
values; the entries of :data:`COMMANDS` and :data:`BLOCKS` add their own checks.

Coverage: every block and command must have an entry in :data:`BLOCKS` / :data:`COMMANDS`
(run here, in the default run or, with a reason, only with ``-m slow``), or sit in a README
section that a test elsewhere runs (:data:`SECTIONS_RUN_ELSEWHERE`), or appear verbatim in
another ``tests/*.py`` (that test runs it). Otherwise
:func:`test_every_command_is_run_by_a_test` fails and names the README line, so an edited
or new line cannot go stale unnoticed; an entry whose text left the README fails
:func:`test_every_entry_is_in_the_docs`.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib.metadata
import io
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, DATA_MISSING

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAIN_JOB = "jaxlike scan --example alp -o alp_scan"
ALP_MGG = "jaxlike scan --example alp-mgg -o alp_mgg"
WET = (
    "jaxlike belle2-wet ../shared/data/belle2_bknunu -o wet_workspace.json "
    "--posterior-config wet_posterior.json"
)
EXAMPLE = "jaxlike example --output example.json"
PREFIXES = ("jaxlike", "python", "python3", "pytest", "pip")


# -- the documents --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Block:
    """A fenced code block: its file, first line (the fence), heading, language and text."""

    path: Path
    line: int
    heading: str
    lang: str
    text: str


@dataclasses.dataclass(frozen=True)
class Command:
    """A shell command shown in a document; ``text`` has its trailing comment removed."""

    path: Path
    line: int
    heading: str
    text: str
    comment: str = ""
    variables: tuple[tuple[str, str], ...] = ()  # name=value lines above it in its block

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line} ({self.heading}): {self.text.splitlines()[0]}"


def parse_blocks(path: Path) -> list[Block]:
    blocks, heading, fence = [], "", None
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if fence is None:
            if m := re.match(r"^```(\w*)\s*$", line):
                fence, start, body = m.group(1), n, []
            elif line.startswith("#"):
                heading = line.lstrip("#").strip()
        elif line.startswith("```"):
            blocks.append(Block(path, start, heading, fence, "\n".join(body) + "\n"))
            fence = None
        else:
            body.append(line)
    return blocks


def _strip_comment(line: str) -> tuple[str, str]:
    """(command, comment) of a shell line: the comment starts at a ``#`` after whitespace
    that is outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def parse_commands(path: Path) -> list[Command]:
    """The commands of ```bash blocks (heredocs kept whole) and the inline command spans."""
    commands = []
    for block in parse_blocks(path):
        if block.lang != "bash":
            continue
        variables, lines = [], block.text.splitlines()
        i = 0
        while i < len(lines):
            text, comment = _strip_comment(lines[i].strip())
            first = block.line + 1 + i
            i += 1
            if not text:
                continue
            if m := re.fullmatch(r"([A-Za-z_]\w*)=(\S+)", text):
                variables.append((m.group(1), m.group(2)))
                continue
            if m := re.search(r"<<-?'?(\w+)'?", text):  # a heredoc: the command runs to its end
                end = lines.index(m.group(1), i)
                text = "\n".join([text, *lines[i : end + 1]])
                i = end + 1
            commands.append(Command(path, first, block.heading, text, comment, tuple(variables)))
    text = path.read_text(encoding="utf-8")
    outside = re.sub(
        r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.M | re.S
    )
    for m in re.finditer(r"`([^`\n]+(?:\n[^`\n]+)?)`", outside):
        span = " ".join(m.group(1).split())
        if span.split(" ")[0] in PREFIXES and " " in span and span not in MENTIONS:
            line = outside.count("\n", 0, m.start()) + 1
            headings = re.findall(r"^#+ (.*)$", outside[: m.start()], re.M)
            commands.append(Command(path, line, headings[-1] if headings else "", span))
    return commands


# -- the scratch repository root and the runner ---------------------------------------------------
@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str


class Runner:
    """Runs README commands and blocks in the scratch root; each command at most once."""

    def __init__(self, root: Path):
        self.root = root
        self.results: dict[str, Result] = {}
        self.blocks_done: dict[str, dict] = {}

    def env(self) -> dict:
        bindir = str(Path(sys.executable).parent)
        return dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"], JAXLIKE_CACHE_DIR="")

    def run(self, command: Command | str, timeout: float = 3600) -> Result:
        """Run a command (its variables expanded); cached by its text."""
        if isinstance(command, str):
            command = COMMAND_BY_TEXT.get(command) or Command(README, 0, "", command)
        if command.text in self.results:
            return self.results[command.text]
        expanded = command.text
        for name, value in command.variables:
            expanded = expanded.replace(f"${name}", value).replace(f"${{{name}}}", value)
        if expanded.startswith("jaxlike ") and "\n" not in expanded and "&" not in expanded:
            from jaxlike.cli import main

            out, err = io.StringIO(), io.StringIO()
            with (
                _chdir(self.root),
                contextlib.redirect_stdout(out),
                contextlib.redirect_stderr(err),
            ):
                code = main(shlex.split(expanded)[1:])
            result = Result(code, out.getvalue(), err.getvalue())
        else:
            proc = subprocess.run(
                ["bash", "-e", "-c", expanded], cwd=self.root, env=self.env(), text=True,
                capture_output=True, timeout=timeout,
            )  # fmt: skip
            result = Result(proc.returncode, proc.stdout, proc.stderr)
        self.results[command.text] = result
        return result

    def ensure(self, need: str):
        """Run a prerequisite once: a command, ``block:KEY`` or ``file:NAME`` (a toml block)."""
        if need.startswith("block:"):
            key = need.removeprefix("block:")
            if key not in self.blocks_done:
                self.blocks_done[key] = run_python_block(BLOCK_BY_KEY[key], self.root)
        elif need.startswith("file:"):
            name = need.removeprefix("file:")
            (self.root / name).write_text(FILES[name].text, encoding="utf-8")
        else:
            spec = COMMANDS.get(need)
            for sub in getattr(spec, "needs", ()):
                self.ensure(sub)
            result = self.run(need)
            assert result.code == 0, (
                f"{need} (needed first) exited {result.code}:\n{result.err[-3000:]}"
            )


@contextlib.contextmanager
def _chdir(path: Path):
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> Runner:
    """The scratch root ``<tmp>/main`` beside ``<tmp>/shared/data`` → DATA (one per module:
    the main job runs once and every later command reads its output)."""
    base = tmp_path_factory.mktemp("readme")
    root = base / "main"
    root.mkdir()
    (base / "shared").mkdir()
    (base / "shared" / "data").symlink_to(DATA)
    for entry in ROOT.iterdir():
        if entry.name not in {"docs", ".git", ".venv"} and not entry.name.startswith("."):
            (root / entry.name).symlink_to(entry)
    (root / ".ci").symlink_to(ROOT / ".ci")
    (root / "docs").mkdir()  # commands write their figures here, not into the checkout's docs/
    return Runner(root)


# -- Python blocks --------------------------------------------------------------------------------
ARROW = re.compile(r"#[^#]*?→\s*(?P<expect>.*)$")
NUMBER = re.compile(r"True|False|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _flatten(value) -> list[float]:
    if isinstance(value, str):
        raise AssertionError(f"a string is not a number: {value!r}")
    if isinstance(value, (bool, np.bool_, int, float, np.number)):
        return [float(value)]
    if isinstance(value, (tuple, list)):
        return [x for v in value for x in _flatten(v)]
    return [float(x) for x in np.ravel(np.asarray(value))]


def check_numbers(value, expect: str, where: str):
    """``value`` equals the numbers written in ``expect`` to their printed digits (integers and
    booleans exactly); ``expect`` ends at two spaces (what follows is commentary)."""
    shown = re.split(r"\s{2,}", expect.strip())[0]
    leftover = NUMBER.sub("", shown)
    assert not re.sub(r"[\s\[\](),]", "", leftover), f"{where}: cannot read → {shown!r}"
    tokens = NUMBER.findall(shown)
    got = _flatten(value)
    assert len(got) == len(tokens), f"{where}: {len(got)} values {got}, README shows → {shown}"
    for token, x in zip(tokens, got, strict=True):
        if token in ("True", "False") or re.fullmatch(r"[-+]?\d+", token):
            want = {"True": 1.0, "False": 0.0}.get(token, None)
            want = float(token) if want is None else want
            assert x == want, f"{where}: got {x}, README shows {token}"
            continue
        mantissa, _, exp = token.lower().partition("e")
        decimals = len(mantissa.partition(".")[2])
        unit = 10.0 ** (int(exp or 0) - decimals)
        assert abs(x - float(token)) <= unit, f"{where}: got {x!r}, README shows {token}"


def run_python_block(block: Block, root: Path) -> dict:
    """Execute ``block`` statement by statement in a fresh namespace with cwd ``root``,
    checking the ``→`` comments; returns the namespace."""
    lines = block.text.splitlines()
    ns: dict = {"__name__": "__readme__"}
    with _chdir(root):
        for stmt in ast.parse(block.text).body:
            where = f"{block.path.name}:{block.line + stmt.lineno}"
            code = compile(ast.Module([stmt], []), where, "exec")
            m = ARROW.search(lines[stmt.end_lineno - 1])
            if m and isinstance(stmt, ast.Expr):
                value = eval(compile(ast.Expression(stmt.value), where, "eval"), ns)  # noqa: S307
            else:
                exec(code, ns)  # noqa: S102
                if not m:
                    continue
                assert isinstance(stmt, ast.Assign), f"{where}: → after a {type(stmt).__name__}"
                value = tuple(eval(ast.unparse(t), ns) for t in stmt.targets)  # noqa: S307
            check_numbers(value, m.group("expect"), where)
    return ns


# -- command output checks ------------------------------------------------------------------------
def check_json_comment(result: Result, command: Command):
    """A comment like ``{"CLs_obs": 0.05929, "converged": true, ...}``: stdout is JSON with
    these values (numbers to the printed digits)."""
    pairs = re.findall(r'"(\w+)":\s*(true|false|[-+]?[\d.]+(?:[eE][-+]?\d+)?)', command.comment)
    if not pairs:
        return
    printed = json.loads(result.out)
    for key, token in pairs:
        assert key in printed, f"{command.where}: no {key!r} in the output {sorted(printed)}"
        value = printed[key]
        token = {"true": "True", "false": "False"}.get(token, token)
        check_numbers(value, token, f"{command.where}: {key}")


def check_json_block(block_text: str):
    """The output equals a ```json block of the README (the same keys; numbers to 1e-9, toy
    p-values exactly)."""

    def check(result: Result, root: Path):
        shown, printed = json.loads(block_text), json.loads(result.out)
        assert sorted(printed) == sorted(shown)
        for key, value in shown.items():
            assert printed[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key

    return check


def check_json_block_after(command_text: str, result: Result):
    """The output equals the ```json block that follows the command's block (the same keys;
    numbers to 1e-9: toy p-values are seeded)."""
    blocks = parse_blocks(README)
    (i,) = [i for i, b in enumerate(blocks) if b.lang == "bash" and command_text in b.text]
    shown, printed = json.loads(blocks[i + 1].text), json.loads(result.out)
    assert blocks[i + 1].lang == "json" and sorted(printed) == sorted(shown)
    for key, value in shown.items():
        assert printed[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def _gives(command_text: str) -> str:
    """The README's ``COMMAND` gives `{...}``` span after an inline command."""
    text = " ".join(README.read_text(encoding="utf-8").split())
    m = re.search(re.escape(command_text) + r"` gives `(\{.*?\})`", text)
    assert m, f"README no longer says what `{command_text}` gives"
    return m.group(1)


def _starts(value, shown: str) -> bool:
    """``0.748…`` in the README: the value printed with those digits."""
    digits = shown.rstrip("…")
    return f"{value:.{len(digits.partition('.')[2])}f}" == digits


def check_ranking_gives(result: Result, root: Path):
    shown, out = _gives("jaxlike ranking example.json --top 2 --json"), json.loads(result.out)
    assert out["poi"] == re.search(r'"poi": "(\w+)"', shown).group(1)
    for key in ("poi_hat", "poi_uncertainty"):
        assert _starts(out[key], re.search(rf'"{key}": ([\d.]+…)', shown).group(1)), key
    first = out["parameters"][0]
    assert first["name"] == re.search(r'"name": "([^"]+)"', shown).group(1)
    assert first["type"] == re.search(r'"type": "(\w+)"', shown).group(1)
    listed = re.search(r'"type": "\w+", (.*?)\}', shown).group(1)
    assert sorted(first) == sorted(["name", "type", *re.findall(r'"(\w+)"', listed)])
    assert out["converged"] is True and out["plot"] is None and len(out["parameters"]) == 2


def check_yields_gives(result: Result, root: Path):
    shown, out = _gives("jaxlike yields example.json --json"), json.loads(result.out)
    assert out["kind"] == "postfit" and out["n_samples"] == 0 and "SR" in out["channels"]
    total = out["channels"]["SR"]["total"]
    for key in ("yield", "uncertainty"):
        assert _starts(total[key], re.search(rf'"{key}": ([\d.]+…)', shown).group(1)), key
    assert total["sampled_uncertainty"] is None


def same_figures(*names: str):
    """The command wrote ``docs/NAME`` byte for byte as the one in the repository."""

    def check(result: Result, root: Path):
        for name in names:
            made, kept = root / "docs" / name, ROOT / "docs" / name
            assert made.is_file(), f"{name} not written"
            assert made.read_bytes() == kept.read_bytes(), f"docs/{name} differs from the rerun"

    return check


def files_exist(*names: str):
    def check(result: Result, root: Path):
        for name in names:
            assert (root / name).is_file() and (root / name).stat().st_size > 0, name

    return check


def stdout_has(*texts: str):
    def check(result: Result, root: Path):
        for text in texts:
            assert text in result.out, f"{text!r} not in the output:\n{result.out[-3000:]}"

    return check


def all_of(*checks):
    def check(result: Result, root: Path):
        for c in checks:
            c(result, root)

    return check


# -- the registry: how each README block and command runs -----------------------------------------
@dataclasses.dataclass(frozen=True)
class Run:
    """A README block or command run by this module: in the default run, or (``slow`` says why
    and which faster test covers the same) only with ``pytest -m slow``. ``needs``: commands
    (``block:KEY``, ``file:NAME``) whose outputs it reads, run first and once."""

    slow: str = ""
    needs: tuple[str, ...] = ()
    check: Callable | None = None
    code: int = 0


@dataclasses.dataclass(frozen=True)
class Covered:
    """A README line that this module's test ``test`` covers in its own way (a line that cannot
    run as written, or runs as part of a larger check)."""

    test: str


SLOW_EXAMPLE = (
    "the fits of the bundled 33-parameter example compile for about a minute per command on 2 "
    "cores; tests/test_cli.py::test_example_runs_the_main_job runs `jaxlike example`"
)

#: README commands run here, keyed by their text (trailing comment removed)
COMMANDS: dict[str, Run | Covered] = {
    # The two commands
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && " + MAIN_JOB: Covered(
        "test_main_job"
    ),
    MAIN_JOB: Covered("test_main_job"),
    'python3 -m venv .venv && . .venv/bin/activate && pip install -q -e ".[test]" && pytest -q': (
        Covered("test_ci_runs_the_readme_test_command")
    ),
    "jaxlike scan --example bka -o bka_scan": Run(
        slow="13 min on 2 cores; the main job runs the same scan code on the alp example, and "
        "tests/test_examples_scans.py builds the bka configuration",
        check=files_exist("bka_scan/scan.h5", "bka_scan/brazil.png"),
    ),
    "jaxlike scan --example zprime -o zprime_scan": Run(
        slow="2 min on 2 cores; the main job runs the same scan code on the alp example, and "
        "tests/test_examples_scans.py builds the zprime configuration",
        check=files_exist("zprime_scan/scan.h5", "zprime_scan/brazil.png"),
    ),
    "jaxlike scan --example dark-higgs --method cls --method bayes -o dark_higgs": Run(
        slow="900 grid points with CLs and Bayesian limits, ~2 min on 2 cores; "
        "tests/test_dark_higgs.py runs the same scan on sub-grids of the example and its "
        "command's error paths, tests/test_counting_grid.py the scan on small grids",
        check=files_exist(
            "dark_higgs/grid.h5", "dark_higgs/limits.png", "dark_higgs/couplings.png"
        ),
    ),
    "jaxlike scan --example bka-lifetime --method cls --method bayes -o bka_lifetime": Run(
        slow="741 grid points × 4 modes with CLs and Bayesian limits, ~2 min on 2 cores; "
        "tests/test_bka_lifetime.py runs the same scan on sub-grids of the example, its g_aW "
        "limits and the command's error paths",
        check=files_exist(
            "bka_lifetime/grid.h5", "bka_lifetime/limits.png", "bka_lifetime/couplings.png"
        ),
    ),
    "jaxlike example": Run(slow=SLOW_EXAMPLE, needs=(EXAMPLE,), check=stdout_has("mu")),
    ALP_MGG: Run(check=files_exist("alp_mgg/alp_scan.toml", "alp_mgg/scan.h5")),
    "jaxlike plot alp_scan/scan.h5 -o brazil.png": Run(
        needs=(MAIN_JOB,), check=files_exist("brazil.png")
    ),
    # Set-up
    "JAXLIKE_DATA=/path/to/data pytest -q": Covered("test_tests_without_the_data"),
    # Quick tour
    "jaxlike inspect $erjr/BkgOnly.json -p $erjr/patch.ERJR_350p0_0p0.json": Run(
        check=stdout_has("mu_SIG")
    ),
    "jaxlike fit $erjr/BkgOnly.json -p $erjr/patch.ERJR_350p0_0p0.json --json": Run(
        needs=("block:Quick tour#0",)
    ),
    "jaxlike cls $erjr/BkgOnly.json -p $erjr/patch.ERJR_350p0_0p0.json --test-poi 1": Run(
        needs=("block:Quick tour#0",)
    ),
    "jaxlike limit $erjr/BkgOnly.json -p $erjr/patch.ERJR_350p0_0p0.json --cl 0.95 --json": Run(
        needs=("block:Quick tour#0",)
    ),
    # Mass scans
    "jaxlike scan alp_scan/alp_scan.toml -o scan.h5": Run(
        slow="the same scan of the same configuration as the main job (test_main_job, default "
        "run), ~1 min more",
        check=files_exist("scan.h5"),
        needs=(MAIN_JOB,),
    ),
    "jaxlike scan alp_scan/alp_scan.toml -o scan.h5 --resume": Run(
        slow="resumes the file of the line above (slow); resume is tested in the default run by "
        "tests/test_cli_scan.py::test_resume_of_a_finished_file_recomputes_nothing",
        needs=("jaxlike scan alp_scan/alp_scan.toml -o scan.h5",),
        check=stdout_has("0 computed"),
    ),
    "jaxlike scan alp_scan/alp_scan.toml --spurious": Run(
        slow="the main job's scan again plus the spurious-signal tables of both segments "
        "(~2 min); tests/test_envelope.py runs --spurious on a small envelope config, "
        "tests/test_envelope.py::test_spurious_signal_table checks the tables",
        needs=(MAIN_JOB,),
        check=stdout_has("spurious"),
    ),
    "jaxlike plot alp_scan/scan.h5 -o brazil.png --significance significance.png": Run(
        needs=(MAIN_JOB,), check=files_exist("brazil.png", "significance.png")
    ),
    # Toys
    "jaxlike cls example.json --calctype toybased --ntoys 2000 --toy-pars init --plot "
    "docs/teststat_example.png": Run(
        slow="4000 toy fits of the 33-parameter example (minutes); "
        "tests/test_toys.py::test_cli_cls_and_limit_with_toys runs cls with toys and --plot",
        needs=(EXAMPLE,),
        check=files_exist("docs/teststat_example.png"),
    ),
    "jaxlike limit example.json --calctype toybased --ntoys 1000 --toy-pars init --json": Run(
        slow="toy limits on 16 grid points, 9 min on 2 cores; "
        "tests/test_toys.py::test_cli_cls_and_limit_with_toys runs limit with toys",
        needs=(EXAMPLE,),
    ),
    "jaxlike cls counting.json --calctype exact": Run(
        needs=("block:Toys: p-values, limits and intervals without asymptotics#0",)
    ),
    "jaxlike toys example.json --mu 1 --ntoys 10000 -o toys.h5": Run(
        slow="10 000 toy fits of the 33-parameter example; "
        "tests/test_toy_study.py::test_cli_on_a_workspace runs the same command on a small model",
        needs=(EXAMPLE,),
        check=files_exist("toys.h5"),
    ),
    "jaxlike toys alp_mgg/alp_scan.toml --mu 0 --ntoys 50 -o study.h5": Run(
        slow="50 toys at each of 332 masses; "
        "tests/test_toy_study.py::test_cli_on_a_scan_config runs the same on a small config",
        needs=(ALP_MGG,),
        check=files_exist("study.h5"),
    ),
    "jaxlike scan alp_mgg/alp_scan.toml -o toy_scan.h5 --calctype toybased --ntoys 20": Run(
        slow="toy limits at each of 332 masses; tests/test_scan_toys.py runs a toy-based scan "
        "of a small config",
        needs=(ALP_MGG,),
        check=files_exist("toy_scan.h5"),
    ),
    # Bayesian posteriors
    WET: Run(check=files_exist("wet_workspace.json", "wet_posterior.json")),
    "jaxlike posterior wet_posterior.json -o wet_posterior": Run(
        slow="NUTS 4 × (1000 + 2000) on 239 parameters and two prior variants, 8 min on 2 cores; "
        "tests/test_bayes_job.py::test_cli runs the posterior command on a small model",
        needs=(WET,),
        check=files_exist("wet_posterior/summary.json", "wet_posterior/corner.png"),
    ),
    "jaxlike posterior my_analysis.toml -o out --chains 4 --samples 2000": Run(
        slow="NUTS 4 × (500 + 2000) on the 33-parameter example; "
        "tests/test_bayes_job.py::test_cli runs the posterior command on a small model",
        needs=(EXAMPLE, "file:my_analysis.toml"),
        check=files_exist("out/summary.json", "out/posterior.h5"),
    ),
    "jaxlike grid wet_workspace.json --x C_V:0:20:100 --y C_T:0:14:100 -o grid.h5 --plot grid.png "
    "--reference C_V=6.613,C_T=0": Run(
        slow="10 000 profile fits of the 239-parameter WET model, ~1 min quiet; "
        "tests/test_grid.py::test_cli runs the grid command on a small workspace",
        needs=(WET,),
        check=files_exist("grid.h5", "grid.png"),
    ),
    # Fit products: a tour (the figures in docs/ are these commands' output, byte for byte)
    EXAMPLE: Run(slow=SLOW_EXAMPLE, check=files_exist("example.json")),
    "jaxlike yields example.json --json -o docs/": Run(
        slow=SLOW_EXAMPLE + "; tests/test_plotting_cli.py::test_yields_json_and_plots",
        needs=(EXAMPLE,),
        check=same_figures("SR_postfit.png", "CR_ttbar_postfit.png", "CR_wjets_postfit.png"),
    ),
    "jaxlike plot example.json --what pulls,ranking,correlation,scan:mu -o docs/": Run(
        slow=SLOW_EXAMPLE + "; tests/test_plotting_cli.py::test_plot_workspace_draws_fit_products",
        needs=(EXAMPLE,),
        check=same_figures("pulls.png", "ranking.png", "correlation.png", "scan_mu.png"),
    ),
    "jaxlike ranking ../shared/data/belle2_bknunu/combined_likelihood.json --top 20 -o "
    "docs/ranking_belle2.png": Run(
        slow="4 × 231 fits of the 232-parameter Belle II likelihood, 24 s to 3 min on 2 cores; "
        "tests/test_plotting_cli.py::test_ranking_json_table_and_plot runs ranking on a small "
        "workspace",
        check=same_figures("ranking_belle2.png"),
    ),
    "jaxlike plot ../shared/data/atlas_erjr/BkgOnly.json -p "
    "../shared/data/atlas_erjr/patch.ERJR_200p0_100p0.json --what pulls,ranking,yields --prefix "
    "erjr_ -o docs/": Run(
        slow="impacts of the 70-parameter ERJR model, ~30 s to minutes on 2 cores; "
        "tests/test_plotting_cli.py::test_plot_workspace_draws_fit_products runs plot --what",
        check=same_figures("erjr_pulls.png", "erjr_ranking.png", "erjr_SRlow_cuts_postfit.png"),
    ),
    "jaxlike gof example.json --toys 200 --json": Run(
        slow=SLOW_EXAMPLE + "; tests/test_plotting_cli.py::test_gof_json",
        needs=(EXAMPLE,),
        check=lambda result, root: check_json_block_after(
            "jaxlike gof example.json --toys 200 --json", result
        ),
    ),
    "jaxlike ranking example.json --top 2 --json": Run(
        slow=SLOW_EXAMPLE + "; tests/test_plotting_cli.py::test_ranking_json_table_and_plot",
        needs=(EXAMPLE,),
        check=check_ranking_gives,
    ),
    # Fit products: the summary commands on the bundled workspace
    "jaxlike ranking example.json --top 20 -o ranking.png": Run(
        slow=SLOW_EXAMPLE + "; tests/test_plotting_cli.py runs ranking on small workspaces",
        needs=(EXAMPLE,),
        check=files_exist("ranking.png"),
    ),
    "jaxlike gof example.json --toys 500 --json": Run(
        slow=SLOW_EXAMPLE + "; tests/test_analysis.py runs goodness_of_fit with toys",
        needs=(EXAMPLE,),
        check=stdout_has("p"),
    ),
    "jaxlike yields example.json --postfit -o yields/": Run(
        slow=SLOW_EXAMPLE + "; tests/test_plotting_cli.py::test_yields_json_and_plots",
        needs=(EXAMPLE,),
        check=files_exist("yields/SR_postfit.png"),
    ),
    "jaxlike plot example.json --what pulls,ranking,correlation,yields,scan:mu -o plots/": Run(
        slow=SLOW_EXAMPLE + "; tests/test_plotting_cli.py::test_plot_workspace_draws_fit_products",
        needs=(EXAMPLE,),
        check=files_exist("plots/pulls.png", "plots/ranking.png", "plots/scan_mu.png"),
    ),
    "jaxlike yields example.json --json": Run(
        slow=SLOW_EXAMPLE + "; tests/test_plotting_cli.py::test_yields_json_and_plots",
        needs=(EXAMPLE,),
        check=check_yields_gives,
    ),
    "pip install 'jaxlike[plot]'": Covered("test_optional_extras_exist"),
    # Dependencies
    'pip install -e ".[test]"': Covered("test_optional_extras_exist"),
    # GPUs and several hosts
    'pip install -U "jax[cuda12]"': Covered("test_gpu_install_names_jax_extras"),
    'python -c "import jax; print(jax.devices())"': Run(check=stdout_has("Device(id=0)")),
    "jaxlike scan alp_scan/alp_scan.toml -o gpu_scan.h5 --memory-budget 8GB": Run(
        slow="on a CPU the 8 GB budget makes one chunk of all 332 hypotheses, which runs until "
        "its slowest lane converges (4 min); "
        "tests/test_scan_stream.py::test_memory_budget_chunk_size sizes chunks by budget",
        needs=(MAIN_JOB,),
        check=files_exist("gpu_scan.h5"),
    ),
    "export JAX_COORDINATOR_ADDRESS=localhost:12345 JAX_NUM_PROCESSES=2": Covered(
        "test_multi_host_scan"
    ),
    "JAX_PROCESS_ID=0 python scan_hosts.py & JAX_PROCESS_ID=1 python scan_hosts.py & wait": Covered(
        "test_multi_host_scan"
    ),
    "jaxlike plot hosts.h5 -o hosts_brazil.png": Covered("test_multi_host_scan"),
    # Benchmarks (the full runs take 10 min to hours; their results are benchmarks/README.md)
    **{
        f"python benchmarks/bench_{name}.py": Covered("test_benchmark_scripts_start")
        for name in ("core", "scan", "analysis", "bayes", "bins", "convergence", "cold", "toys",
                     "counting_grid")
    },
    # Notebooks
    "pytest -m slow tests/test_notebooks.py": Covered("test_notebook_tests_exist"),
}

#: inline spans that name a verb or a pattern, not a command to run
MENTIONS = {
    "jaxlike scan … --calctype toybased --ntoys N",
    "jaxlike scan",
    "jaxlike toys",
    "jaxlike fit",
    "jaxlike inspect",
}

#: README sections whose commands a test elsewhere runs (it reads the section itself)
SECTIONS_RUN_ELSEWHERE = {
    "Published likelihoods from the command line": (
        "tests/test_cli_scan.py::test_readme_published_likelihood_commands_run"
    ),
}

#: README Python blocks, keyed ``heading#n`` (the n-th Python block under that heading)
BLOCKS: dict[str, Run | Covered] = {
    "Quick tour#0": Run(),
    "Quick tour#1": Run(
        slow="four vmapped programs of a 69-parameter model compile for minutes on 2 cores; the "
        "same batched calls run in the default run on small models: tests/test_infer.py "
        "(hypotest_scan, cl=[...], vmap over datasets and stacked models), tests/test_unify.py"
    ),
    "Mass scans and signal grids#0": Run(needs=(ALP_MGG,)),
    "Mass scans and signal grids#1": Run(
        slow="20 background-only toys of the 332-mass scan take ~10 min on 2 cores; "
        "tests/test_lee.py runs scan_toys and global_significance on small scans",
        needs=(ALP_MGG,),
    ),
    "Mass scans and signal grids#2": Run(
        slow="the 66-patch ERJR scan, ~4 min on 2 cores; "
        "tests/test_scan_patches.py::test_batched_scan_equals_each_patch_alone runs patch_scan "
        "on a small grid",
    ),
    "Counting searches on N-D grids: mass × lifetime → couplings#0": Run(),
    "Toys: p-values, limits and intervals without asymptotics#0": Run(),
    "Toys: p-values, limits and intervals without asymptotics#1": Run(
        slow="toy-based tests, limits, a Feldman–Cousins band and a 10 000-toy study compile and "
        "run for minutes; tests/test_toys.py and tests/test_toy_study.py run each call on "
        "counting models"
    ),
    "Bayesian posteriors and reinterpretation: B⁺ → K⁺ νν̄ in the WET#0": Run(
        slow="NUTS 4 × (1000 + 2000) on the 239-parameter WET model; tests/test_bayes_nuts.py "
        "and tests/test_bayes_job.py sample small models",
    ),
    "Bayesian posteriors and reinterpretation: B⁺ → K⁺ νν̄ in the WET#1": Run(),
    "Fit products: pulls, impacts, goodness of fit, yields, plots#0": Run(
        slow="impacts, 500 goodness-of-fit toys, a profile scan and MINOS of the 33-parameter "
        "example compile for minutes on 2 cores; tests/test_analysis.py runs each call on small "
        "models"
    ),
    "GPUs and several hosts#0": Covered("test_multi_host_scan"),
}


# -- what the documents hold ----------------------------------------------------------------------
def _python_blocks() -> dict[str, Block]:
    out, seen = {}, {}
    for path in DOCS:
        for block in parse_blocks(path):
            if block.lang == "python":
                n = seen.setdefault(block.heading, 0)
                seen[block.heading] += 1
                out[f"{block.heading}#{n}"] = block
    return out


ALL_COMMANDS = [c for path in DOCS for c in parse_commands(path)]
COMMAND_BY_TEXT = {c.text: c for c in reversed(ALL_COMMANDS)}  # the first occurrence
BLOCK_BY_KEY = _python_blocks()
FILES = {
    m.group(1): b
    for path in DOCS
    for b in parse_blocks(path)
    if b.lang == "toml" and (m := re.match(r"# (\S+\.toml)\s*\n", b.text))
}


def _params(registry: dict, items: dict):
    params = []
    for key in items:
        spec = registry.get(key)
        if isinstance(spec, Run):
            marks = [pytest.mark.slow] if spec.slow else []
            params.append(pytest.param(key, marks=marks, id=key[:70]))
    return params


def _skip_without_data(text: str):
    if "../shared/data" in text and DATA_MISSING:
        pytest.skip(DATA_MISSING)


# -- the tests ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", _params(BLOCKS, BLOCK_BY_KEY))
def test_python_block(key, runner):
    block, spec = BLOCK_BY_KEY[key], BLOCKS[key]
    _skip_without_data(block.text + "".join(spec.needs))
    for need in spec.needs:
        runner.ensure(need)
    runner.blocks_done[key] = run_python_block(block, runner.root)


@pytest.mark.parametrize("text", _params(COMMANDS, {c.text: c for c in ALL_COMMANDS}))
def test_command(text, runner):
    command, spec = COMMAND_BY_TEXT[text], COMMANDS[text]
    expanded = text + "".join(v for _, v in command.variables)
    _skip_without_data(expanded + "".join(spec.needs))
    for need in spec.needs:
        runner.ensure(need)
    result = runner.run(command)
    assert result.code == spec.code, f"{command.where} exited {result.code}:\n{result.err[-3000:]}"
    if spec.check:
        spec.check(result, runner.root)
    check_json_comment(result, command)


def test_every_python_block_runs_in_a_test():
    missing = [
        f"{b.path.name}:{b.line} ({key})" for key, b in BLOCK_BY_KEY.items() if key not in BLOCKS
    ]
    assert not missing, (
        "Python blocks that no test runs (add them to BLOCKS in tests/test_readme.py): "
        + "; ".join(missing)
    )


def _verbatim_in_other_tests() -> set[str]:
    """The string constants of the other test modules, and each of their lines: a test that
    runs a README command holds its text as a string (or a line of one)."""
    found = set()
    for path in sorted((ROOT / "tests").glob("*.py")):
        if path.name == Path(__file__).name:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value.strip())
                found.update(line.strip() for line in node.value.splitlines())
    return found


def test_every_command_is_run_by_a_test():
    elsewhere = _verbatim_in_other_tests()
    missing = []
    for c in ALL_COMMANDS:
        if c.text in COMMANDS or c.text in elsewhere:
            continue
        if c.heading in SECTIONS_RUN_ELSEWHERE:
            continue
        missing.append(c.where)
    assert not missing, (
        "README commands that no test runs (add each to COMMANDS in tests/test_readme.py, run "
        "it in a test elsewhere with its text verbatim, or mark a name in MENTIONS):\n"
        + "\n".join(missing)
    )


def test_every_entry_is_in_the_docs():
    texts = {c.text for c in ALL_COMMANDS}
    stale = [t for t in COMMANDS if t not in texts] + [k for k in BLOCKS if k not in BLOCK_BY_KEY]
    stale += [m for m in MENTIONS if not any(m in " ".join(p.read_text().split()) for p in DOCS)]
    assert not stale, f"entries of tests/test_readme.py no longer in the docs: {stale}"
    for spec in [*COMMANDS.values(), *BLOCKS.values()]:
        if isinstance(spec, Covered):
            assert callable(globals().get(spec.test)), spec.test
        for need in getattr(spec, "needs", ()):
            kind, _, name = need.partition(":")
            known = {"block": BLOCK_BY_KEY, "file": FILES}.get(kind, texts)
            assert (name if kind in ("block", "file") else need) in known, need
    reasons = " ".join(getattr(spec, "slow", "") for spec in [*COMMANDS.values(), *BLOCKS.values()])
    for path, name in re.findall(r"(tests/\w+\.py)::(\w+)", reasons):
        assert f"def {name}(" in (ROOT / path).read_text(encoding="utf-8"), f"{path}::{name}"
    for heading, test in SECTIONS_RUN_ELSEWHERE.items():
        path, _, name = test.partition("::")
        source = (ROOT / path).read_text(encoding="utf-8")
        assert f"def {name}(" in source and heading in source, test
        assert any(c.heading == heading for c in ALL_COMMANDS), heading


# -- commands with their own tests ----------------------------------------------------------------
def test_main_job(runner):
    """Command 1: the main job (its install part is the CI command's, see the next test)."""
    (line,) = [c.text for c in ALL_COMMANDS if c.text.endswith("&& " + MAIN_JOB)]
    assert line.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install -e . && ")
    assert "jaxlike = " in (ROOT / "pyproject.toml").read_text()  # the command pip installs
    result = runner.run(MAIN_JOB)
    assert result.code == 0, result.err[-3000:]
    folder = runner.root / "alp_scan"
    written = ("alp_scan.toml", "alp_gg_scan.toml", "alp_gg_spectrum.npz", "alp_recoil_scan.toml",
               "alp_recoil_spectrum.npz", "scan.h5", "scan.gg.h5", "scan.recoil.h5",
               "brazil.png", "significance.png")  # fmt: skip
    for name in written:
        assert (folder / name).stat().st_size > 0, name
    from jaxlike.scan import read_results

    hyps, res, attrs = read_results(folder / "scan.h5")
    text = README.read_text()
    documented = int(re.search(r"then fits (\d+) mass hypotheses", text).group(1))
    assert len(hyps["mass"]) == documented and bool(np.all(attrs["done"]))
    assert bool(np.all(res["fit_converged"])), "the main job's fits converge"
    assert bool(np.all(res["limit_converged"])), "the main job's limits converge"
    # the published procedure: two segments, an envelope, one-sided limits on the coupling
    assert list(attrs["segment_names"]) == ["gg", "recoil"] and attrs["rule"] == "clsb"
    assert list(attrs["config"]["segments"][0]["config"]["envelope"]["models"][1]["order"]) == [
        5, 4, 2]
    # CLs+b: the −2σ expected limit σ (Φ⁻¹(0.95) − 2) < 0 is clipped to 0; the others are > 0
    exp = res["ul_exp_coupling"]
    assert np.all(np.isfinite(res["ul_obs_coupling"])) and np.all(exp[..., 1:] > 0)
    assert np.all(exp[..., 0] >= 0) and np.all(exp[..., 0] < exp[..., 1])
    per = [int(np.sum(hyps["segment"] == k)) for k in (0, 1)]
    assert f"{per[0]} in M²_γγ and {per[1]} in M²_recoil" in text
    header = (folder / "alp_scan.toml").read_text().split("\n[")[0]
    assert f"{documented} hypotheses" in header, "the config's comment states what runs"


def test_ci_runs_the_readme_test_command():
    """Command 2 creates a venv (not possible inside a test): CI runs exactly it."""
    (line,) = [c.text for c in ALL_COMMANDS if c.text.endswith("&& pytest -q")]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == line, f".ci/run runs {ci[-1]!r}, the README says {line!r}"


def test_tests_without_the_data(tmp_path):
    """``JAXLIKE_DATA=… pytest``: the whole suite collects without the data, a test that needs
    it is skipped with the one message, and a unit test still runs."""
    env = dict(os.environ, JAXLIKE_DATA=str(tmp_path / "nowhere"))
    select = "test_patches_differ_in_layout_without_unification or test_same_seed_same_workspace"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-k", select,
         str(ROOT / "tests")],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "error" not in proc.stdout.lower().split("short test summary")[0][-200:]
    assert re.search(r"\b1 passed, 1 skipped\b", proc.stdout), proc.stdout[-2000:]
    assert f"no test data in {tmp_path / 'nowhere'}" in proc.stdout
    assert "JAXLIKE_DATA=/path/to/data pytest" in proc.stdout


def test_optional_extras_exist():
    """``pip install 'jaxlike[plot]'`` and ``.[test]``: the extras are declared."""
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(d.startswith("mplhep") for d in extras["plot"])
    assert {"jsonpatch", "arviz", "pyhf", "pdoc"} <= {
        re.split(r"[<>=!\[ ]", d)[0] for d in extras["test"]
    }


def test_gpu_install_names_jax_extras():
    """``pip install -U "jax[cuda12]"`` (or cuda13) cannot run here: the extras exist."""
    extras = set(importlib.metadata.metadata("jax").get_all("Provides-Extra") or [])
    assert {"cuda12", "cuda13"} <= extras, sorted(extras)


def test_benchmark_scripts_start():
    """The benchmarks run for 10 min to hours against pyhf (results: benchmarks/README.md):
    each documented script exists, imports and parses its options (``--help``), in one
    interpreter."""
    scripts = sorted(
        {
            m.group(1)
            for c in ALL_COMMANDS
            if (m := re.fullmatch(r"python (benchmarks/\S+\.py)", c.text))
        }
    )
    assert len(scripts) >= 6, scripts
    code = (
        "import os, runpy, sys\n"
        "for script in sys.argv[1:]:\n"
        "    sys.argv = [script, '--help']\n"
        "    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))  # as `python script`\n"
        "    try:\n"
        "        runpy.run_path(script, run_name='__main__')\n"
        "    except SystemExit as e:\n"
        "        assert e.code in (0, None), (script, e.code)\n"
        "    print('ok', script)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *scripts], cwd=ROOT, text=True,
                          capture_output=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("ok benchmarks/") == len(scripts)


def test_notebook_tests_exist():
    """``pytest -m slow tests/test_notebooks.py`` selects the slow notebook tests; every
    notebook has a test and a row in notebooks/README.md, and imports only public names."""
    source = (ROOT / "tests" / "test_notebooks.py").read_text()
    assert source.count("@pytest.mark.slow") >= 2
    listed = (ROOT / "notebooks" / "README.md").read_text()
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in notebooks:
        assert path.name in source and f"`{path.name}`" in listed, path.name
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        private = re.findall(r"^\s*(?:from|import) (jaxlike\S*\._\w+)", code, re.M)
        assert not private, f"{path.name} imports private modules: {private}"
    assert len(notebooks) >= 3


@pytest.mark.slow  # two processes compile and run the 332-mass scan (minutes); the two-process
# path runs in the default run: tests/test_scan_stream.py::test_two_jax_distributed_processes
def test_multi_host_scan(runner):
    """The multi-host script of the README (written to scan_hosts.py) in two processes on one
    machine, then the plot of the merged file."""
    runner.ensure(ALP_MGG)
    (runner.root / "scan_hosts.py").write_text(BLOCK_BY_KEY["GPUs and several hosts#0"].text)
    lines = [c.text for c in ALL_COMMANDS if c.heading == "GPUs and several hosts"]
    script = "\n".join(t for t in lines if t.startswith("export ") or "scan_hosts.py" in t)
    proc = subprocess.run(["bash", "-e", "-c", script], cwd=runner.root, env=runner.env(),
                          text=True, capture_output=True, timeout=3000)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = runner.run("jaxlike plot hosts.h5 -o hosts_brazil.png")
    assert result.code == 0, result.err
    from jaxlike.scan import read_results

    hyps, res, attrs = read_results(runner.root / "hosts.h5")
    assert bool(np.all(attrs["done"])) and len(hyps["mass"]) == 332
    assert (runner.root / "hosts_brazil.png").is_file()
