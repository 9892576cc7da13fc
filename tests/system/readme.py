"""The README's fenced blocks, read the way a user reads them.

A block is what a user copies: a configuration to load, `dockyard` command lines to type, or a
walk-through to paste into a shell. The rules that pick them apart live here, so the test
module only says what each kind of block must do.
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dockyard.config.root import Config

README = Path(__file__).resolve().parents[2] / "README.md"

README_ADDRESS = "127.0.0.1:5000"
"""The registry address every example uses; a test serves elsewhere and rewrites it."""

SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
YAML_LANGUAGES = frozenset({"yaml", "yml"})

CONFIG_SECTIONS = frozenset(Config.model_fields)

SHELL_OPERATORS = frozenset({"|", "||", "&&", ";", "&"})

TYPED_PLACEHOLDERS = {"N": "2"}
"""Placeholders the parser converts to a number, with a value that stands for them; every
other placeholder (FILE, REPOSITORY, ...) parses as the word itself."""

_FENCE = re.compile(r"^```(\S*)\s*$")
_HEADING = re.compile(r"^#{1,6}\s+(.*)$")
_HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)")
_BACKGROUND_SERVE = re.compile(r"^\s*dockyard serve\b.*&\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its text and where it is."""

    language: str
    text: str
    line: int
    section: str

    def where(self) -> str:
        return f"README.md:{self.line} ({self.section})"


def read_blocks(path: Path = README) -> list[Block]:
    """Every fenced block, with the heading it stands under."""
    found: list[Block] = []
    section = ""
    opened: tuple[str, int] | None = None
    body: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fence = _FENCE.match(line)
        if opened is not None:
            if line.rstrip() == "```":
                found.append(Block(opened[0], "\n".join(body) + "\n", opened[1], section))
                opened, body = None, []
            else:
                body.append(line)
        elif fence is not None:
            opened = (fence.group(1), number)
        elif (heading := _HEADING.match(line)) is not None:
            section = heading.group(1).strip()
    assert opened is None, f"README.md:{opened[1]}: a fenced block is never closed"
    return found


def section_blocks(blocks: list[Block], section: str, languages: frozenset[str]) -> list[Block]:
    """The blocks under one heading; a renamed or emptied section fails here, not silently."""
    chosen = [block for block in blocks if block.section == section
              and block.language in languages]
    assert chosen, f"README.md has no {sorted(languages)} block under the heading {section!r}"
    return chosen


def config_documents(block: Block) -> list[dict[str, Any]]:
    """The Dockyard configurations in a YAML block: mappings with a top-level config section.

    Compose files, Kubernetes objects and other tools' YAML name none of the sections, so
    they are not Dockyard's; one that names a section and also an unknown key is, and fails
    to load, which is how a renamed section shows.
    """
    return [document for document in yaml.safe_load_all(block.text)
            if isinstance(document, dict) and CONFIG_SECTIONS & set(document)]


def as_config_file(block: Block) -> str:
    """The block as a whole configuration file: a fragment gets the version line it lacks.

    Text, not a merged mapping, so the loader still sees every key the block spells (a key
    given twice included).
    """
    documents = config_documents(block)
    assert len(documents) == 1, f"{block.where()}: one configuration per block"
    if "version" in documents[0]:
        return block.text
    return "version: 0.1\n" + block.text


def logical_lines(block: Block) -> Iterator[str]:
    """The command lines of a shell block: continuations joined, here-document bodies and
    the output shown after `$ ` prompts left out."""
    prompted = any(line.startswith("$ ") for line in block.text.splitlines())
    pending = ""
    heredoc_end: str | None = None
    for line in block.text.splitlines():
        if heredoc_end is not None:
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        if prompted and not pending:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        command, pending = pending + line, ""
        if (heredoc := _HEREDOC.search(command)) is not None:
            heredoc_end = heredoc.group(1)
        if command.strip():
            yield command


def program_commands(block: Block, program: str) -> Iterator[list[str]]:
    """The arguments of every call of `program` in the block, pipelines and `&` included."""
    for line in logical_lines(block):
        words = shlex.split(line, comments=True)
        command: list[str] = []
        for word in [*words, ";"]:
            if word not in SHELL_OPERATORS:
                command.append(word)
                continue
            if command[:1] == [program]:
                yield command[1:]
            command = []


def synopsis_variants(words: list[str]) -> list[list[str]]:
    """A usage line as concrete argument lists: `[...]` parts all given and all left out,
    each `a|b|c` choice taken in turn. A plain command line is its own single variant."""
    variants: list[list[str]] = []
    for keep_optional in (True, False):
        for variant in synopsis_choices(words, keep_optional):
            typed = [TYPED_PLACEHOLDERS.get(word, word) for word in variant]
            if typed not in variants:
                variants.append(typed)
    return variants


def synopsis_choices(words: list[str], keep_optional: bool) -> list[list[str]]:
    """The argument lists a usage line stands for, with or without its `[...]` parts."""
    chosen: list[str] = []
    depth = 0
    for word in words:
        depth += word.startswith("[")
        if keep_optional or depth == 0:
            chosen.append(word.removeprefix("[").removesuffix("]"))
        depth -= word.endswith("]")
    return [list(picked) for picked in itertools.product(*(word.split("|") for word in chosen))]


def synopsis_script(block: Block, address: str, placeholders: dict[str, str]) -> str:
    """A block of usage lines as a script: every `dockyard` line with all its options, once per
    choice, placeholders filled in; other lines (curl) as they are, the address rewritten."""
    lines = []
    for line in logical_lines(block):
        words = shlex.split(line, comments=True)
        if words[:1] != ["dockyard"]:
            lines.append(line.replace(README_ADDRESS, address))
            continue
        for variant in synopsis_choices(words, keep_optional=True):
            lines.append(shlex.join(placeholders.get(word, word) for word in variant))
    return "\n".join(lines) + "\n"


def runnable(block: Block, address: str) -> str:
    """A walk-through as a script for this test: its address rewritten, and a wait for the
    server after each `dockyard serve ... &` (a user reads the log; a script must wait)."""
    lines = []
    for line in block.text.replace(README_ADDRESS, address).splitlines():
        lines.append(line)
        if _BACKGROUND_SERVE.match(line):
            lines.append(f"await_registry {address}")
    return "\n".join(lines) + "\n"
