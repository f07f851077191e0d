"""proxy.addon without a socket: whole-or-nothing loading, the fake clock, and the change watcher."""

from __future__ import annotations

import asyncio
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from proxy_helpers import ROOT

from proxy.addon import Klaswacht, Refused, load_all, parse_fake_clock
from proxy.metrics import ProxyMetrics

with warnings.catch_warnings():
    # mitmproxy.addons imports ldap3, which uses pyasn1 names that warn on import: not ours to fix.
    warnings.simplefilter("ignore", DeprecationWarning)
    from mitmproxy.addons.proxyauth import ProxyAuth
    from mitmproxy.test import taddons


PRIMARY = (ROOT / "policies" / "primary.toml").read_text(encoding="utf-8")


def test_load_all_refuses_a_bad_policy_with_file_and_line(tmp_path: Path) -> None:
    """A policy that cannot be used is Refused naming file:line: reason."""
    bad = tmp_path / "p.toml"
    bad.write_text(PRIMARY.replace('type = "primary"', 'type = "college"'), encoding="utf-8")
    with pytest.raises(Refused, match=rf"{tmp_path}/p.toml:9: .*college"):
        load_all(str(bad), [], strict_lists=False)


def test_load_all_refuses_proxyauth_without_a_readable_accounts_file(tmp_path: Path) -> None:
    """identity = "proxyauth" with a missing or malformed htpasswd file is refused, never half loaded."""
    policy = tmp_path / "p.toml"
    policy.write_text(PRIMARY.replace('default_group = "school"',
                                      'default_group = "school"\nidentity = "proxyauth"\naccounts = "x.htpasswd"'),
                      encoding="utf-8")
    with pytest.raises(Refused, match="accounts file not usable"):
        load_all(str(policy), [], strict_lists=False)
    (tmp_path / "x.htpasswd").write_text("1001:plaintext\n", encoding="utf-8")
    with pytest.raises(Refused, match=r"x.htpasswd:0: .*Unsupported"):
        load_all(str(policy), [], strict_lists=False)
    (tmp_path / "x.htpasswd").write_text("1001:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", encoding="utf-8")
    assert load_all(str(policy), [], strict_lists=False).proxyauth == f"@{tmp_path / 'x.htpasswd'}"


def test_load_all_refuses_bad_list_lines_only_when_reloading(tmp_path: Path) -> None:
    """At start a bad list line is skipped; on a reload (strict) it refuses the whole change with file:line."""
    policy = tmp_path / "p.toml"
    policy.write_text(PRIMARY, encoding="utf-8")
    (tmp_path / "lists" / "local").mkdir(parents=True)
    (tmp_path / "lists" / "local" / "coarse.txt").write_text("goed\nslecht =abc\n", encoding="utf-8")
    folders = [str(tmp_path / "lists")]
    assert len(load_all(str(policy), folders, strict_lists=False).lists.errors) == 1
    with pytest.raises(Refused, match=r"local/coarse.txt:2: "):
        load_all(str(policy), folders, strict_lists=True)


@pytest.mark.parametrize(("text", "expected"), [
    ("", None),
    ("2026-03-29T01:20:00Z", datetime(2026, 3, 29, 1, 20, tzinfo=UTC)),
    ("2026-03-30T08:40", datetime(2026, 3, 30, 6, 40, tzinfo=UTC)),  # local time, CEST
    ("2026-01-12T10:00", datetime(2026, 1, 12, 9, 0, tzinfo=UTC)),  # local time, CET
])
def test_parse_fake_clock(text: str, expected: datetime | None) -> None:
    """The fake clock is an instant; without an offset it is the school's local time."""
    assert parse_fake_clock(text) == expected


def test_the_watcher_reloads_a_change_and_refuses_a_bad_one(tmp_path: Path) -> None:
    """reload_if_changed: nothing when nothing changed, True for a good change, False (and counted) for a bad one."""
    asyncio.run(_watch_changes(tmp_path))


async def _watch_changes(tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text(PRIMARY, encoding="utf-8")
    registry = CollectorRegistry()
    addon = Klaswacht(ProxyMetrics(registry))
    with taddons.context(ProxyAuth(), addon) as tctx:
        tctx.configure(addon, klaswacht_policy=str(policy), klaswacht_period="auto",
                       klaswacht_fake_clock="2026-03-02T10:00")
        assert addon.policy is not None and "chat" in addon.policy.periods["lesson"].closed
        assert await addon.reload_if_changed() is None
        policy.write_text(PRIMARY.replace('[periods.lesson]\nclosed = ["chat", ', '[periods.lesson]\nclosed = ['),
                          encoding="utf-8")
        assert await addon.reload_if_changed() is True
        assert "chat" not in addon.policy.periods["lesson"].closed
        policy.write_text("[school\n", encoding="utf-8")
        assert await addon.reload_if_changed() is False
        assert "chat" not in addon.policy.periods["lesson"].closed  # the version in force stays
        assert registry.get_sample_value("klaswacht_reloads_total", {"result": "failed"}) == 1
        assert await addon.reload_if_changed() is None  # a refused version is judged once
        assert addon._period("school") == "lesson"  # Monday 10:00 on the fake clock
