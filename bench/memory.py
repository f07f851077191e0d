"""Child process of bench.core: peak resident memory of importing and building one matcher, alone.

    python -m bench.memory klaswacht|re [EXTRA_LIST_FILE ...]

prints one JSON object: the peak RSS after the imports and after building the shipped lists plus
the extra files (named CATEGORY.txt), in KiB, from /proc/self/status (VmHWM, the one to use) and
from getrusage (ru_maxrss, which on Linux also holds the peak of the process that forked us).
"""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import Callable
from pathlib import Path


def peak_rss_kib() -> int:
    """Peak resident set size of this process so far, in KiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def vm_hwm_kib() -> int:
    """VmHWM (the peak RSS of this process image) from /proc/self/status, in KiB.

    Unlike ru_maxrss, it starts afresh at exec, so it is not the peak of the parent that forked us.
    """
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _builder(engine: str) -> Callable[[list[tuple[str, str, str]]], object]:
    if engine == "klaswacht":
        from filters.terms import build_termlist
        return build_termlist
    if engine == "re":
        from bench.baseline import RegexTerms
        return RegexTerms
    raise SystemExit(f"unknown engine {engine!r}: klaswacht or re")


def main(argv: list[str]) -> int:
    """Build one matcher from the shipped lists plus `argv[1:]` and print the peak RSS as JSON."""
    if not argv:
        raise SystemExit(__doc__)
    build = _builder(argv[0])
    from bench.inputs import read_files, shipped_term_files

    imports = {"imports_hwm_kib": vm_hwm_kib(), "imports_maxrss_kib": peak_rss_kib()}
    files = shipped_term_files() + read_files([Path(p) for p in argv[1:]])
    built = build(files)
    result = {"engine": argv[0], **imports, "peak_hwm_kib": vm_hwm_kib(), "peak_maxrss_kib": peak_rss_kib()}
    print(json.dumps(result))
    del built
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
