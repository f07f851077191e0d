"""deploy/dns/: the gateway resolver's NXDOMAIN snippets cannot drift from wordlists/hosts/doh.txt, and the proxy
refuses the same names (issue 6, circumvention).

The syntax is checked by the tools that read the files (`dnsmasq --test`, `unbound-checkconf`); a missing tool
skips that one test with the Debian package that provides it (`.ci/run` installs them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from filters.decide import Context
from filters.hosts import parse_domain
from filters.interception import interception
from klaswacht.loading import SHIPPED_LISTS, load_lists, load_policy

ROOT = Path(__file__).resolve().parents[2]
DNS = ROOT / "deploy" / "dns"
HOSTS = ROOT / "wordlists" / "hosts"
BUILD = ROOT / "wordlists" / "tools" / "build_dns.py"
CANARY_AND_RELAY = ("use-application-dns.net", "mask.icloud.com", "mask-h2.icloud.com")


def build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BUILD), *args], capture_output=True, text=True, timeout=60, check=False)


def listed(path: Path) -> list[str]:
    """The domain names of a host list, read by klaswacht's own parser."""
    names = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        domain = parse_domain(line, path.name, number)
        if domain and not re.fullmatch(r"[0-9.]+|[0-9a-f:]+", domain):
            names.append(domain)
    return names


def test_the_snippets_are_up_to_date() -> None:
    """`build_dns.py --check` passes: the shipped snippets are what doh.txt and vpn.txt make."""
    result = build("--check")
    assert result.returncode == 0, result.stderr


def test_every_doh_name_the_canary_and_private_relay_get_nxdomain() -> None:
    """Each domain of doh.txt (no IP address) and Apple's Private Relay names are in both snippets, as NXDOMAIN."""
    unbound = (DNS / "klaswacht-unbound.conf").read_text(encoding="utf-8")
    dnsmasq = (DNS / "klaswacht-dnsmasq.conf").read_text(encoding="utf-8")
    zones = re.findall(r'^    local-zone: "([^"]+)\." always_nxdomain$', unbound, re.M)
    addresses = re.findall(r"^address=/([^/]+)/$", dnsmasq, re.M)
    expected = {*listed(HOSTS / "doh.txt"), *CANARY_AND_RELAY}
    assert set(zones) == set(addresses) == expected
    assert len(zones) == len(expected)  # each once
    # nothing else in the files but comments, the server: clause and these lines
    assert all(line.startswith("#") or line in ("server:",) or "always_nxdomain" in line
               for line in unbound.splitlines())
    assert all(line.startswith(("#", "address=/")) for line in dnsmasq.splitlines())


def test_a_change_to_doh_txt_is_caught(tmp_path: Path) -> None:
    """A name added to doh.txt and not regenerated makes the check fail; without the Private Relay names in
    vpn.txt the script refuses to build."""
    hosts = tmp_path / "hosts"
    hosts.mkdir()
    shutil.copy(HOSTS / "vpn.txt", hosts / "vpn.txt")
    (hosts / "doh.txt").write_text((HOSTS / "doh.txt").read_text(encoding="utf-8") + "doh.nieuw.example\n",
                                   encoding="utf-8")
    result = build("--check", "--hosts", str(hosts))
    assert result.returncode == 1 and "out of date" in result.stderr
    result = build("--hosts", str(hosts), "--out", str(tmp_path / "dns"))
    assert result.returncode == 0
    assert "address=/doh.nieuw.example/\n" in (tmp_path / "dns" / "klaswacht-dnsmasq.conf").read_text(encoding="utf-8")
    (hosts / "vpn.txt").write_text("nordvpn.com\nmask.icloud.com\n", encoding="utf-8")
    result = build("--check", "--hosts", str(hosts))
    assert result.returncode == 2 and "mask-h2.icloud.com must be listed" in result.stderr


@pytest.mark.parametrize("policy", ["primary.toml", "secondary.toml"])
def test_the_proxy_refuses_the_same_names_in_every_period(policy: str) -> None:
    """With the shipped lists and policies, the canary, Private Relay, every DoH name and the known VPN and proxy
    sites are closed in every period and refused at the handshake (no decrypting, no block page)."""
    loaded = load_policy(str(ROOT / "policies" / policy))
    lists = load_lists([SHIPPED_LISTS], loaded)
    names = [*CANARY_AND_RELAY, *listed(HOSTS / "doh.txt"), "8.8.8.8", "1.1.1.1", *listed(HOSTS / "vpn.txt")]
    for period in ("lesson", "break", "outside", "holiday"):
        context = Context(loaded, lists.terms, lists.hosts, period)
        for name in names:
            choice = interception(name, context)
            assert choice.choice == "refuse", (period, name, choice)
            assert choice.verdict is not None and choice.verdict.category in ("doh", "vpn")


def _tool(name: str, package: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}",) if Path(p).is_file()), None)
    if path is None:
        pytest.skip(f"{name} not found: install the Debian package '{package}' (apt-get install {package})")
    return path


def test_dnsmasq_reads_its_snippet() -> None:
    """dnsmasq's own syntax check accepts the snippet."""
    result = subprocess.run([_tool("dnsmasq", "dnsmasq-base"), "--test", "-C", str(DNS / "klaswacht-dnsmasq.conf")],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0 and "syntax check OK" in result.stderr, result.stderr


def test_unbound_reads_its_snippet(tmp_path: Path) -> None:
    """unbound-checkconf accepts a configuration that includes the snippet."""
    config = tmp_path / "unbound.conf"
    config.write_text('server:\n    chroot: ""\n    username: ""\n    directory: "/tmp"\n'
                      f'include: "{DNS / "klaswacht-unbound.conf"}"\n', encoding="utf-8")
    result = subprocess.run([_tool("unbound-checkconf", "unbound"), str(config)], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0 and "no errors" in result.stdout, result.stdout + result.stderr
