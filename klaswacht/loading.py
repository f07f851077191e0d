"""Reading the policy file and the list folders from disk into the pure structures of filters/."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from filters.hosts import ALLOW, HOST_CATEGORIES, UT1_NAMES, HostLists, build_hostlists
from filters.policy import Policy, PolicyError, parse_policy
from filters.terms import ListError, TermList, build_termlist

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_LISTS = ROOT / "wordlists"
SHIPPED_POLICIES = ROOT / "policies"
DEFAULT_POLICY = SHIPPED_POLICIES / "primary.toml"

# Folders inside a list folder that hold no lists (raw material, tools).
_NOT_LISTS = {"sources", "tools"}


@dataclass(frozen=True, slots=True)
class Lists:
    terms: TermList
    hosts: HostLists
    errors: tuple[ListError, ...]
    files: tuple[str, ...]


def load_policy(path: str | Path) -> Policy:
    """The policy in `path`; PolicyError (file, line, reason) if it cannot be used."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError(str(path), 0, f"cannot read: {e}") from e
    return parse_policy(text, _display(path.resolve()))


def _list_files(folder: Path) -> dict[str, Path]:
    """Relative name -> path of every list file below `folder`."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or rel.parts[0] in _NOT_LISTS or path.name.startswith("."):
            continue
        if path.suffix == ".txt" or (rel.parts[0] == "hosts" and path.name == "domains"):
            found[rel.as_posix()] = path
    return found


def local_list_files(folders: Sequence[Path]) -> dict[str, Path]:
    """Relative name -> path of the list files the loader reads from `folders`; a later folder's file wins."""
    found: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            found.update(_list_files(folder))
    return found


def fingerprint(files: list[Path], folders: list[Path]) -> dict[str, tuple[int, int]]:
    """(mtime in ns, size) of each file and of every list file in the folders: a change shows as a new value.

    A file that is gone is left out, so that deleting it is a change too.
    """
    found: dict[str, tuple[int, int]] = {}
    paths = [*files, *(p for folder in folders if folder.is_dir() for p in _list_files(folder).values())]
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        found[str(path)] = (stat.st_mtime_ns, stat.st_size)
    return found


def _host_category(rel: str) -> str:
    parts = rel.split("/")
    name = parts[1] if parts[-1] == "domains" else Path(parts[-1]).stem
    return UT1_NAMES.get(name, name)


def _display(path: Path) -> str:
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


@dataclass(frozen=True, slots=True)
class ListFiles:
    """The texts of the list files as load_lists reads them, before compiling: (where, category, text)."""

    terms: tuple[tuple[str, str, str], ...]
    hosts: tuple[tuple[str, str, str], ...]
    errors: tuple[ListError, ...]  # files that could not be read
    files: tuple[str, ...]


def read_list_files(folders: list[Path], policy: Policy | None = None) -> ListFiles:
    """Read the list folders; a file in a later folder replaces the same file in an earlier one."""
    files: dict[str, Path] = {}
    for folder in folders:
        files.update(_list_files(folder))
    term_files: list[tuple[str, str, str]] = []
    host_files: list[tuple[str, str, str]] = []
    errors: list[ListError] = []
    for rel, path in sorted(files.items()):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            errors.append(ListError(_display(path), 0, f"cannot read: {e}"))
            continue
        if rel.startswith("hosts/"):
            category = _host_category(rel)
            if category == ALLOW or category in HOST_CATEGORIES or rel.endswith(".txt"):
                # build_hostlists reports an unknown category in a .txt file (a typo in a name).
                host_files.append((_display(path), category, text))
            # A dropped-in UT1 archive holds many categories; those klaswacht has no use for are skipped.
        else:
            term_files.append((_display(path), path.stem, text))
    if policy is not None and policy.allow_hosts:
        host_files.append((f"{policy.source} [allow]", ALLOW, "\n".join(policy.allow_hosts)))
    return ListFiles(tuple(term_files), tuple(host_files), tuple(errors), tuple(_display(p) for p in files.values()))


def load_lists(folders: list[Path], policy: Policy | None = None) -> Lists:
    """Compile the list folders; a file in a later folder replaces the same file in an earlier one."""
    read = read_list_files(folders, policy)
    terms, term_errors = build_termlist(read.terms)
    hosts, host_errors = build_hostlists(read.hosts)
    return Lists(terms, hosts, (*read.errors, *term_errors, *host_errors), read.files)
