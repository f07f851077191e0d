"""`klaswacht doctor`: check a deployment and say what to fix, one line per check.

✓ passes, ✗ fails (with a concrete fix), ! is a warning (something doctor cannot tell here). Exit 0
when nothing fails, 1 otherwise. Doctor only reads: it opens the database read-only, except for one
empty write transaction that shows whether another process holds the write lock; run it as the data
dir's owner (`sudo -u klaswacht klaswacht doctor ...`) so that it makes no file another user owns.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from psycopg.conninfo import conninfo_to_dict

from filters.policy import Policy, PolicyError
from klaswacht.backup import BackupError, lock_holder, schema_version
from klaswacht.configversion import config_version
from klaswacht.loading import DEFAULT_POLICY, SHIPPED_LISTS, load_lists, load_policy
from klaswacht.store import DATABASE_ENV, DB_NAME, default_database_url
from klaswacht.store.postgres import SCHEMA_LOCK, is_url, redact
from klaswacht.store.schema import LATEST

CA_KEY = "mitmproxy-ca.pem"  # key and certificate: what mitmproxy signs with
CA_CERT = "mitmproxy-ca-cert.pem"  # the certificate pupils' devices trust
CA_MARGIN = timedelta(days=30)
MIN_FREE = 100 * 1024 * 1024
_WAL_WRITE_LOCK = 120  # the writer's byte in the WAL shared-memory file (sqlite.org/walformat.html)
MARK = {True: "✓", False: "✗", None: "!"}
MIGRATION_GRACE = 60.0  # seconds a migration may hold its lock before doctor calls it stuck


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: a warning
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{MARK[self.ok]} {self.name}: {self.detail}"
        return f"{text} — fix: {self.fix}" if self.fix and self.ok is not True else text


def _owner_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return str(uid)


def check_data_dir(data_dir: Path) -> Iterator[Check]:
    name = "data dir"
    if not data_dir.is_dir():
        yield Check(name, False, f"{data_dir} does not exist",
                    "run: klaswacht run once with this --data-dir (it makes the folder, CA and database), "
                    "or klaswacht restore a backup into it")
        return
    st = data_dir.stat()
    me = os.geteuid()
    problems, fixes = [], []
    if stat.S_IMODE(st.st_mode) != 0o700:
        problems.append(f"mode {stat.S_IMODE(st.st_mode):04o} (pupils' names are in it: must be 0700)")
        fixes.append(f"run: chmod 700 {data_dir}")
    if st.st_uid != me:
        problems.append(f"owned by {_owner_name(st.st_uid)}, not by you ({_owner_name(me)})")
        fixes.append(f"run doctor as its owner: sudo -u {_owner_name(st.st_uid)} klaswacht doctor ...")
    strangers = []
    for sub in (data_dir, data_dir / "ca", data_dir / "spill"):
        if sub.is_dir():
            strangers += [p for p in sub.iterdir() if p.lstat().st_uid != st.st_uid]
    if strangers:
        problems.append(f"{len(strangers)} files not owned by {_owner_name(st.st_uid)} (e.g. {strangers[0]}): "
                        "klaswacht cannot write or replay them")
        fixes.append(f"run: chown -R {_owner_name(st.st_uid)}: {data_dir}")
    if problems:
        yield Check(name, False, f"{data_dir}: " + "; ".join(problems), "; ".join(fixes))
    else:
        yield Check(name, True, f"{data_dir}: mode 0700, owned by {_owner_name(me)}")


def check_ca(data_dir: Path, now: datetime) -> Iterator[Check]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    name = "CA"
    folder = data_dir / "ca"
    missing = [n for n in (CA_KEY, CA_CERT) if not (folder / n).is_file()]
    if missing:
        yield Check(name, False, f"{', '.join(str(folder / n) for n in missing)} missing",
                    "run: klaswacht run once to make the CA (or klaswacht restore a backup: pupils' devices trust "
                    "the old CA, a new one must be installed on every device)")
        return
    try:
        cert = x509.load_pem_x509_certificate((folder / CA_CERT).read_bytes())
        key_pem = (folder / CA_KEY).read_bytes()
        key = serialization.load_pem_private_key(key_pem, password=None)
        signing_cert = x509.load_pem_x509_certificate(key_pem)
    except (ValueError, TypeError, OSError) as e:
        yield Check(name, False, f"{folder} cannot be read as a CA ({e})",
                    f"restore the CA from a backup (klaswacht restore FILE), or move {folder} aside and run "
                    "klaswacht once to make a new CA (then install it on every pupil's device)")
        return
    pem = serialization.PublicFormat.SubjectPublicKeyInfo
    public = {c.public_key().public_bytes(serialization.Encoding.PEM, pem) for c in (cert, signing_cert)}
    if len(public) != 1 or key.public_key().public_bytes(serialization.Encoding.PEM, pem) not in public:
        yield Check(name, False, f"{folder / CA_CERT} and {folder / CA_KEY} belong to different CAs",
                    "restore the ca folder from one backup (klaswacht restore FILE)")
        return
    ends = cert.not_valid_after_utc
    if cert.not_valid_before_utc > now:
        yield Check(name, False, f"{folder / CA_CERT} is valid only from {cert.not_valid_before_utc:%Y-%m-%d}: "
                    "is the clock right?", "set the clock (timedatectl set-ntp true)")
    elif ends - now < CA_MARGIN:
        yield Check(name, False, f"{folder / CA_CERT} expires on {ends:%Y-%m-%d}",
                    f"make a new CA before then: stop klaswacht, move {folder} aside, start it, and install the new "
                    "certificate on every pupil's device")
    else:
        yield Check(name, True, f"{folder / CA_CERT} valid until {ends:%Y-%m-%d}")


def check_database(data_dir: Path, may_write: bool) -> Iterator[Check]:
    db = data_dir / DB_NAME
    if not db.is_file():
        yield Check("database", False, f"{db} does not exist",
                    "run: klaswacht run once (it makes and migrates the database), or klaswacht restore a backup")
        return
    try:
        version = schema_version(db)
    except BackupError as e:
        yield Check("database", False, str(e), "restore the database from a backup (klaswacht restore FILE)")
        return
    if version < LATEST:
        yield Check("database", False, f"schema version {version}, this klaswacht needs {LATEST}",
                    "migrations run when klaswacht starts: run: systemctl restart klaswacht (or klaswacht run)")
    elif version > LATEST:
        yield Check("database", False, f"schema version {version} is newer than this klaswacht knows ({LATEST})",
                    "upgrade klaswacht to the version that wrote this database")
    else:
        yield Check("database", True, f"{db} opens, schema version {version} (current)")
    if not may_write:
        yield Check("database lock", None, "not tested: doctor would have to open the database as another user")
    else:
        yield _check_lock(db)


def check_disk(data_dir: Path) -> Iterator[Check]:
    free = shutil.disk_usage(data_dir).free
    if free < MIN_FREE:
        yield Check("disk", False, f"{free // (1024 * 1024)} MB free under {data_dir}",
                    "free disk space (at least 100 MB): old logs, old backups; or run: klaswacht purge")
    else:
        yield Check("disk", True, f"{free // (1024 * 1024)} MB free under {data_dir}")


def _scrub(url: str) -> Callable[[str], str]:
    """Removes the URL's password from a text (a driver's message may quote the connection string)."""
    try:
        password = str(conninfo_to_dict(url).get("password") or "")
    except psycopg.Error:
        password = ""
    return lambda text: text.replace(password, "***") if len(password) >= 3 else text


def check_postgres(url: str) -> Iterator[Check]:
    """The PostgreSQL database: reachable, schema current, the migrations lock free. The password is never shown."""
    display, scrub = redact(url), _scrub(url)
    try:
        options: dict[str, Any] = {"application_name": "klaswacht-doctor"}
        if "connect_timeout" not in conninfo_to_dict(url):
            options["connect_timeout"] = 5
        connection = psycopg.connect(url, autocommit=True, **options)
    except psycopg.Error as e:
        reason = scrub(str(e).strip()).splitlines()[0] if str(e).strip() else type(e).__name__
        yield Check("database", False, f"cannot connect to {display}: {reason}",
                    "is the server up (pg_isready)? Check host, port, database, user and password in the URL "
                    "(--database or KLASWACHT_DATABASE) and the server's pg_hba.conf")
        return
    with connection:
        try:
            yield from _postgres_schema(connection, display)
            yield _postgres_lock(connection, display)
        except psycopg.Error as e:
            yield Check("database", False, f"{display}: {scrub(str(e).strip())}",
                        "check the user's rights on the database (klaswacht needs to create and read its tables)")


def _postgres_schema(connection: psycopg.Connection[tuple[Any, ...]], display: str) -> Iterator[Check]:
    row = connection.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    version = 0
    if row and row[0]:
        found = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()
        version = int(found[0] or 0) if found else 0
    server = connection.info.parameter_status("server_version") or "?"
    if version == 0:
        yield Check("database", False, f"{display} (PostgreSQL {server}) answers but holds no klaswacht schema",
                    "migrations run when klaswacht starts: run: systemctl restart klaswacht (or klaswacht run)")
    elif version < LATEST:
        yield Check("database", False, f"{display}: schema version {version}, this klaswacht needs {LATEST}",
                    "migrations run when klaswacht starts: run: systemctl restart klaswacht (or klaswacht run)")
    elif version > LATEST:
        yield Check("database", False, f"{display}: schema version {version} is newer than this klaswacht knows "
                    f"({LATEST})", "upgrade klaswacht on this gateway to the version the others run")
    else:
        yield Check("database", True, f"{display} (PostgreSQL {server}) answers, schema version {version} (current)")


def _postgres_lock(connection: psycopg.Connection[tuple[Any, ...]], display: str) -> Check:
    """Who holds the advisory lock that serialises migrations (klaswacht/store/postgres.py), and for how long."""
    # pg_advisory_xact_lock(key) of a key below 2**32 shows as classid 0, objid key, objsubid 1.
    row = connection.execute(
        "SELECT l.pid, a.application_name, EXTRACT(EPOCH FROM now() - a.xact_start) FROM pg_locks l "
        "LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.classid = 0 AND l.objid = %s AND l.objsubid = 1", (SCHEMA_LOCK,)).fetchone()
    if row is None:
        return Check("migrations lock", True, "free")
    pid, application, seconds = row[0], row[1] or "?", float(row[2] or 0)
    if seconds < MIGRATION_GRACE:
        return Check("migrations lock", None, f"held by process {pid} ({application}) for {seconds:.0f} s: a "
                     "gateway is migrating the schema now")
    return Check("migrations lock", False, f"held by process {pid} ({application}) for {seconds:.0f} s",
                 f"a gateway's start hangs in its migration: see SELECT * FROM pg_stat_activity WHERE pid = {pid}; "
                 f"end it with SELECT pg_terminate_backend({pid}) (on {display})")


def check_config_version(policy: Path, folders: list[Path], metrics_port: int) -> Check:
    """The version of the policy and lists on disk (a bundle's, or a content hash) against the running proxy's."""
    on_disk = config_version(policy, folders)
    where = _bundle_origin(policy, on_disk)
    running: list[str] = []
    answer = _http_get(metrics_port, "/metrics") if metrics_port else None
    if answer is not None and answer[0] == 200:
        running = re.findall(r'^klaswacht_config_info\{version="([^"]*)"\} 1', answer[2], re.MULTILINE)
    if not running:
        return Check("config version", True, f"{on_disk} on disk ({where}); no running proxy to compare with")
    if running == [on_disk]:
        return Check("config version", True, f"the proxy runs {on_disk} ({where})")
    return Check("config version", False, f"the proxy runs {', '.join(running)} but the policy and lists on disk are "
                 f"{on_disk} ({where})", "the proxy refused them or has not reloaded yet: journalctl -u klaswacht "
                 "names the file and line of a refused reload")


def _bundle_origin(policy: Path, version: str) -> str:
    """Where the files come from, for people: the board's bundle (when last synced) or local files."""
    folder = policy.resolve().parent
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "local files, a content hash"
    if not isinstance(manifest, dict) or manifest.get("version") != version:
        return "a bundle's folder, changed by hand since"
    text = f"the board's bundle made {manifest.get('created', '?')}"
    try:
        state = json.loads((folder.parent.parent / ".sync-state.json").read_text(encoding="utf-8"))
        return f"{text}, last fetched {state['synced']}"
    except (OSError, ValueError, KeyError, TypeError):
        return text


def _check_lock(db: Path) -> Check:
    """An empty write transaction: fails at once if another process holds the write lock."""
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=0.5, isolation_level=None)) as c:
            c.execute("BEGIN IMMEDIATE")
            c.execute("ROLLBACK")
    except sqlite3.OperationalError as e:
        if "locked" not in str(e) and "busy" not in str(e):
            return Check("database lock", False, f"{db}: {e}", "restore the database from a backup")
        holder = lock_holder(Path(f"{db}-shm"), _WAL_WRITE_LOCK)
        who = f"process {holder}" if holder else "another process"
        return Check("database lock", False, f"{db} is locked by {who} for longer than 0.5 s",
                     f"see which: fuser -v {db}; end that program (a sqlite3 shell, a stuck job); klaswacht's "
                     "events wait in spill files meanwhile")
    return Check("database lock", True, "not locked")


def check_policy(path: Path) -> tuple[Check, Policy | None]:
    try:
        policy = load_policy(path)
    except PolicyError as e:
        return Check("policy", False, str(e), f"fix that line, then: klaswacht check policy {path}"), None
    return Check("policy", True, f"{path} loads ({policy.school_type} school, {len(policy.groups)} groups)"), policy


def check_lists(folders: list[Path], policy: Policy | None) -> Iterator[Check]:
    absent = [f for f in folders if not f.is_dir()]
    for folder in absent:
        yield Check("lists", False, f"{folder} is not a folder", "give the local list folder's path to --lists")
    lists = load_lists([SHIPPED_LISTS, *(f for f in folders if f.is_dir())], policy)
    for error in lists.errors:
        own = next((f for f in folders if str(error).startswith(str(f.resolve()))), None)
        yield Check("lists", False, str(error),
                    f"fix that line, then: klaswacht check lists {own}" if own else "fix that line")
    if not lists.errors and not absent:
        yield Check("lists", True, f"{len(lists.files)} files load without errors")


def check_timezone(policy: Policy) -> Check:
    try:
        ZoneInfo(policy.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return Check("time zone", False, f"no time zone data for {policy.timezone!r} (the policy's timezone)",
                     "run: apt-get install tzdata")
    return Check("time zone", True, f"{policy.timezone} known")


def check_clock(now: datetime) -> Iterator[Check]:
    if now.year < 2025:
        yield Check("clock", False, f"the system clock says {now:%Y-%m-%d %H:%M} UTC",
                    "set the clock and keep it right: timedatectl set-ntp true")
    else:
        yield Check("clock", True, f"{now:%Y-%m-%d %H:%M} UTC")
    tool = shutil.which("timedatectl")
    if tool is None:
        yield Check("clock sync", None, "timedatectl not found: cannot tell whether NTP keeps the clock right")
        return
    try:
        answer = subprocess.run([tool, "show", "-p", "NTPSynchronized", "--value"], capture_output=True, text=True,
                                timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        yield Check("clock sync", None, f"timedatectl did not answer ({e})")
        return
    value = answer.stdout.strip()
    if answer.returncode != 0 or value not in ("yes", "no"):
        reason = (answer.stderr.strip().splitlines() or ["no answer"])[0]
        yield Check("clock sync", None, f"timedatectl cannot tell ({reason})")
    elif value == "no":
        yield Check("clock sync", False, "the clock is not synchronised by NTP: breaks and lessons may shift",
                    "run: timedatectl set-ntp true")
    else:
        yield Check("clock sync", True, "synchronised by NTP")


def _http_get(port: int, path: str, host: str | None = None) -> tuple[int, dict[str, str], str] | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        response = conn.getresponse()
        body = response.read(1 << 20).decode("utf-8", "replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _is_klaswacht(kind: str, port: int) -> bool:
    if kind == "proxy":
        # The WPAD file is answered by klaswacht's proxy itself, before any rule: in a break or a ban too
        # (every other path may get the block page then), and never by a bare mitmproxy.
        answer = _http_get(port, "/wpad.dat", host="wpad")
        return answer is not None and answer[0] == 200 and "FindProxyForURL" in answer[2]
    if kind == "metrics":
        answer = _http_get(port, "/metrics")
        return answer is not None and answer[0] == 200 and "klaswacht_" in answer[2]
    answer = _http_get(port, "/healthz")
    return answer is not None and answer[0] in (200, 503)  # 503: the dashboard waits for its database


def check_port(kind: str, port: int) -> Check:
    name = f"{kind} port"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
            return Check(name, True, f"{port} is free on loopback")
        except OSError:
            pass
    if _is_klaswacht(kind, port):
        return Check(name, True, f"{port}: klaswacht's {kind} answers")
    return Check(name, False, f"{port} is taken by something that is not klaswacht's {kind}",
                 f"see which: ss -ltnp 'sport = :{port}'; stop it, or give klaswacht another port "
                 f"(--{kind}-port)")


def _sysctl(path: str) -> str | None:
    """A /proc/sys value; None when the file is not there (IPv6 turned off in the kernel)."""
    try:
        return Path(path).read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"unreadable ({e})"


def forwarding_checks(ipv4: str | None, ipv6: str | None) -> Iterator[Check]:
    """IPv4 forwarding must be on; IPv6 forwarding too when pupils have IPv6 (PUPIL_NET6 in the ruleset), else
    their IPv6 connections go nowhere and devices fall back to IPv4 after a delay: a warning, not a failure."""
    if ipv4 == "1":
        yield Check("ip forwarding", True, "net.ipv4.ip_forward = 1")
    else:
        yield Check("ip forwarding", False, f"net.ipv4.ip_forward = {ipv4}: the gateway does not route",
                    "run: sysctl -w net.ipv4.ip_forward=1, and keep it: echo net.ipv4.ip_forward=1 > "
                    "/etc/sysctl.d/90-klaswacht.conf")
    if ipv6 is None or ipv6 == "1":
        yield Check("ipv6 forwarding", True, "IPv6 is off in this kernel" if ipv6 is None
                    else "net.ipv6.conf.all.forwarding = 1")
    else:
        yield Check("ipv6 forwarding", None, f"net.ipv6.conf.all.forwarding = {ipv6}: pupils' IPv6 is not routed",
                    "if pupils have IPv6 (PUPIL_NET6): sysctl -w net.ipv6.conf.all.forwarding=1, and keep it in "
                    "/etc/sysctl.d/90-klaswacht.conf")


def check_transparent() -> Iterator[Check]:
    yield from forwarding_checks(_sysctl("/proc/sys/net/ipv4/ip_forward"),
                                 _sysctl("/proc/sys/net/ipv6/conf/all/forwarding"))
    if shutil.which("nft"):
        yield Check("nftables", True, "nft present")
    else:
        yield Check("nftables", False, "nft not found: transparent mode needs nftables rules",
                    "run: apt-get install nftables")


def diagnose(args: argparse.Namespace, now: datetime | None = None) -> list[Check]:
    now = now or datetime.now(UTC)
    data_dir = Path(args.data_dir).expanduser()
    checks = list(check_data_dir(data_dir))
    url = getattr(args, "database", None)
    if data_dir.is_dir():
        checks += check_ca(data_dir, now)
        if not is_url(url):
            checks += check_database(data_dir, may_write=data_dir.stat().st_uid == os.geteuid())
    if is_url(url):
        checks += check_postgres(str(url))
    if data_dir.is_dir():
        checks += check_disk(data_dir)
    policy_check, policy = check_policy(Path(args.policy))
    checks.append(policy_check)
    checks += check_lists(list(args.lists), policy)
    if policy is not None:
        checks.append(check_config_version(Path(args.policy), list(args.lists), args.metrics_port))
    if policy is not None:
        checks.append(check_timezone(policy))
    checks += check_clock(now)
    for kind in ("proxy", "dashboard", "metrics"):
        port = getattr(args, f"{kind}_port")
        if port:
            checks.append(check_port(kind, port))
    if args.transparent:
        checks += check_transparent()
    return checks


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = diagnose(args)
    for check in checks:
        print(check.line())
    failed = sum(1 for c in checks if c.ok is False)
    warned = sum(1 for c in checks if c.ok is None)
    print(f"{len(checks)} checks: {failed} failed, {warned} warnings", file=sys.stderr)
    return 1 if failed else 0


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser], default_data_dir: Path) -> None:
    """Register `doctor` on the `klaswacht` parser."""
    p = sub.add_parser("doctor", help="check a deployment (data dir, CA, database, policy, lists, clock, ports) "
                                      "and say what to fix; exit 1 if anything fails")
    p.add_argument("--data-dir", default=str(default_data_dir), metavar="DIR", help="(default: %(default)s)")
    p.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="the policy klaswacht runs with")
    p.add_argument("--lists", action="append", type=Path, default=[], metavar="DIR", help="a local list folder")
    p.add_argument("--proxy-port", type=int, default=8080, help="0: not checked (default: %(default)s)")
    p.add_argument("--dashboard-port", type=int, default=8081, help="0: not checked (default: %(default)s)")
    p.add_argument("--metrics-port", type=int, default=9464, help="0: not checked (default: %(default)s)")
    p.add_argument("--database", default=default_database_url(), metavar="URL",
                   help="a postgresql:// URL: check that server instead of DIR/klaswacht.db "
                        f"(default: ${DATABASE_ENV}); its password is never printed")
    p.add_argument("--transparent", action="store_true", help="also check IP forwarding and nftables")
    p.set_defaults(func=cmd_doctor)
