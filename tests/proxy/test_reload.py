"""Hot reload in a real `klaswacht run` (issue 4, point 10): lists and policy change while the proxy runs.

The addon checks the policy file and the list folders about every second and reloads them whole; a
bad change is refused with file:line:reason in the log and in `klaswacht_reloads_total{result="failed"}`,
and the version in force stays.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxy_helpers import ROOT, Parent, Running, fetch, metric, start, until

# A change must be in force (or refused) within this many seconds.
IN_FORCE = 5.0
FAILED = 'klaswacht_reloads_total{result="failed"}'
SEARCH = "http://www.google.com/search?q=blauwebessenjam"


@pytest.fixture(scope="module")
def reloading(tmp_path_factory: pytest.TempPathFactory, parent: Parent) -> Iterator[Running]:
    """The primary policy (a copy) and a local list folder with one empty coarse list, in a lesson."""
    tmp = tmp_path_factory.mktemp("reload")
    (tmp / "policy.toml").write_text((ROOT / "policies" / "primary.toml").read_text(encoding="utf-8"),
                                     encoding="utf-8")
    (tmp / "lists" / "local").mkdir(parents=True)
    (tmp / "lists" / "local" / "coarse.txt").write_text("# the school's own words\n", encoding="utf-8")
    running = start(tmp / "data", "--policy", str(tmp / "policy.toml"), "--lists", str(tmp / "lists"),
                    "--period", "lesson", "--upstream", parent.url)
    yield running
    if running.process.poll() is None:
        running.stop()


def _folder(running: Running) -> Path:
    return running.data_dir.parent


def _write(path: Path, text: str) -> None:
    """Write so that the change is seen even within one mtime tick: the size changes too."""
    path.write_text(text, encoding="utf-8")


def test_a_new_list_word_is_blocked_within_seconds(reloading: Running) -> None:
    """A word added to a list file under --lists is blocked in the running proxy within a few seconds."""
    assert fetch(reloading.proxy, SEARCH)[0] == 200
    _write(_folder(reloading) / "lists" / "local" / "coarse.txt", "# the school's own words\nblauwebessenjam\n")
    assert until(lambda: fetch(reloading.proxy, SEARCH)[0] == 403, IN_FORCE) is not None


def test_a_bad_list_line_is_refused_and_the_lists_in_force_stay(reloading: Running) -> None:
    """A list change with a bad line is refused whole: the word added with it is not in force, the old ones are."""
    failed = metric(reloading, FAILED)
    _write(_folder(reloading) / "lists" / "local" / "coarse.txt",
           "blauwebessenjam\nframbozenvla\nkruisbes =abc\n")
    assert until(lambda: metric(reloading, FAILED) > failed, IN_FORCE) is not None
    assert fetch(reloading.proxy, "http://www.google.com/search?q=frambozenvla")[0] == 200
    assert fetch(reloading.proxy, SEARCH)[0] == 403


def test_a_broken_policy_is_refused_and_the_policy_in_force_stays(reloading: Running) -> None:
    """A policy change that cannot be used is counted as a failed reload; chat stays closed as before."""
    policy = _folder(reloading) / "policy.toml"
    good = policy.read_text(encoding="utf-8")
    failed = metric(reloading, FAILED)
    _write(policy, good.replace('type = "primary"', 'type = "college"'))
    assert until(lambda: metric(reloading, FAILED) > failed, IN_FORCE) is not None
    assert fetch(reloading.proxy, "http://discord.com/")[0] == 403
    assert fetch(reloading.proxy, SEARCH)[0] == 403


def test_a_good_policy_change_is_in_force_within_seconds(reloading: Running) -> None:
    """A policy that opens chat in lessons is in force without a restart (once the bad list line is fixed:
    a reload is whole, so a list still broken would refuse it too)."""
    _write(_folder(reloading) / "lists" / "local" / "coarse.txt", "blauwebessenjam\nframbozenvla\n")
    policy = _folder(reloading) / "policy.toml"
    text = (ROOT / "policies" / "primary.toml").read_text(encoding="utf-8")
    ok = metric(reloading, 'klaswacht_reloads_total{result="ok"}')
    _write(policy, text.replace('[periods.lesson]\nclosed = ["chat", ', '[periods.lesson]\nclosed = ['))
    assert until(lambda: fetch(reloading.proxy, "http://discord.com/")[0] == 200, IN_FORCE) is not None
    assert metric(reloading, 'klaswacht_reloads_total{result="ok"}') > ok
    assert fetch(reloading.proxy, "http://www.google.com/search?q=frambozenvla")[0] == 403


def test_refusals_are_logged_with_file_line_and_reason(reloading: Running) -> None:
    """The log names the file, the line and the reason of each refused change; the proxy kept running."""
    time.sleep(0.2)
    assert reloading.process.poll() is None
    assert reloading.stop() == 0
    folder = _folder(reloading)
    assert f"{folder / 'policy.toml'}:" in reloading.stderr and "college" in reloading.stderr
    assert f"{folder / 'lists' / 'local' / 'coarse.txt'}:3:" in reloading.stderr
