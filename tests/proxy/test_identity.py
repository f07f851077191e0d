"""Who asks, in a real `klaswacht run` (issue 4, point 2): roster, group subnets, default group, proxy login.

Requests come from loopback source addresses (127.0.0.2, 127.0.0.3) so that one proxy sees several
devices. What the proxy concluded is read back from the stored events: group and pseudonymous client.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import bcrypt
from proxy_helpers import KLASWACHT, ROOT, Parent, fetch_from, start

POLICY = (ROOT / "policies" / "primary.toml").read_text(encoding="utf-8")


def events(data: Path) -> list[dict[str, object]]:
    result = subprocess.run([KLASWACHT, "events", "--data-dir", str(data)], capture_output=True, text=True,
                            timeout=60, check=True)
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_roster_then_subnet_then_default_group(tmp_path: Path, parent: Parent) -> None:
    """A roster device is its pupil (p-id, the pupil's group, even inside another group's subnet); a device in
    a group's subnet gets that group (d-id); any other device the school's default group."""
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.replace('subnets = ["10.20.56.0/24"]', 'subnets = ["10.20.56.0/24", "127.0.0.2/31"]'),
                      encoding="utf-8")
    data = tmp_path / "data"
    roster = tmp_path / "roster.csv"
    roster.write_text("leerlingnummer,voornaam,achternaam,klas,ip\n2002,Daan,Jansen,groep 7-8,127.0.0.3\n",
                      encoding="utf-8")
    subprocess.run([KLASWACHT, "roster", "import", str(roster), "--data-dir", str(data)], check=True,
                   capture_output=True, timeout=60)
    running = start(data, "--policy", str(policy), "--period", "lesson", "--upstream", parent.url)
    try:
        for source in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            assert fetch_from(running.proxy, "http://discord.com/", source)[0] == 403
    finally:
        assert running.stop() == 0
    seen = [(e["group"], str(e["client"])[:2]) for e in events(data)]
    assert seen == [("school", "d-"), ("groep 5-6", "d-"), ("groep 7-8", "p-")]
    assert "Daan" not in json.dumps(events(data)) and "Daan" not in running.stderr


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_proxy_login_asks_with_407_and_names_the_pupil_by_the_roster(tmp_path: Path, parent: Parent) -> None:
    """identity = "proxyauth": no or a wrong login gets 407; the right one passes, the login is the pupil number
    (group from the roster, p-id in events), and the credentials never leave the gateway."""
    (tmp_path / "pupils.htpasswd").write_text(
        "3003:" + bcrypt.hashpw(b"appel-42", bcrypt.gensalt(rounds=4)).decode() + "\n", encoding="utf-8")
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.replace('default_group = "school"',
                                     'default_group = "school"\nidentity = "proxyauth"\naccounts = "pupils.htpasswd"'),
                      encoding="utf-8")
    data = tmp_path / "data"
    roster = tmp_path / "roster.csv"
    roster.write_text("leerlingnummer;naam;groep\n3003;Fleur Bakker;groep 3-4\n", encoding="utf-8")
    subprocess.run([KLASWACHT, "roster", "import", str(roster), "--data-dir", str(data)], check=True,
                   capture_output=True, timeout=60)
    running = start(data, "--policy", str(policy), "--period", "lesson", "--upstream", parent.url)
    site = "http://www.speelgoedwinkel.nl/identity"
    try:
        assert fetch_from(running.proxy, site)[0] == 407
        assert fetch_from(running.proxy, site, headers={"Proxy-Authorization": _basic("3003", "peer")})[0] == 407
        assert site not in parent.urls()
        good = {"Proxy-Authorization": _basic("3003", "appel-42")}
        assert fetch_from(running.proxy, site, headers=good)[0] == 200
        assert parent.seen[-1][1] == site and "proxy-authorization" not in parent.seen[-1][2]
        assert fetch_from(running.proxy, "http://discord.com/", headers=good)[0] == 403
    finally:
        assert running.stop() == 0
    blocked = [e for e in events(data) if e["rule"] == "closed-category"]
    assert [(e["group"], str(e["client"])[:2]) for e in blocked] == [("groep 3-4", "p-")]
    assert "appel" not in running.stderr
