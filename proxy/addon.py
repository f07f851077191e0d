"""The klaswacht addon: mitmproxy's hooks adapted to filters/, which decides.

It finds who is asking (client address or proxy login -> pupil and group), which period it is, what
the request holds (host, search text), asks `filters.decide`, and then answers with the block page,
adds SafeSearch, or lets the request go. Events go to the store with an enqueue; the decision never
waits on the database. Grants and bans come from the store's snapshot (refreshed about every second).

For IT's dry run of a list change it records what pupils search for (the text, without pupil, device
or group) and each host once a local day (each worker notes it; the store keeps one a day). Pupils'
requests from the block page ("Ik heb dit nodig voor mijn opdracht") go to the store as events for the
teacher, next to their reports: only when posted by the pupil's own page (not by another website's, as
the browser's Sec-Fetch-Site tells), and at most five of a client in ten minutes, counted in the database
so that the limit holds across the workers (more are thanked for, and counted, not recorded).

It also watches the policy file, the accounts file and the list folders, and reloads them whole when
they change (a bad change is refused with file:line:reason and the version in force stays), and, when
the policy's `[filter] passthrough` is on, leaves TLS connections undecrypted that no rule needs to
look into (`tls_clienthello`), decrypting only the categories the policy inspects (`[filter] inspect`), and
refuses connections to hosts of the categories in `[filter] refuse` that are blocked (a DoH resolver, a VPN)
at the CONNECT request (403) or the ClientHello (closed), without decrypting anything.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mitmproxy import connection, ctx, exceptions, http, tls
from mitmproxy.proxy import server_hooks
from mitmproxy.utils.htpasswd import HtpasswdFile

from filters.decide import Context, Facts, Verdict, decide
from filters.hosts import clean_host
from filters.interception import Interception, interception
from filters.policy import DEFAULT_SCHOOL, PERIODS, Policy, PolicyError
from filters.safesearch import enforce_safesearch
from filters.search import extract_search_query, find_engine
from filters.timetable import local_time, period_at, whole_minutes
from klaswacht.configversion import config_version
from klaswacht.loading import DEFAULT_POLICY, SHIPPED_LISTS, Lists, fingerprint, load_lists, load_policy
from klaswacht.store import Event, Store, StoreError, gateway_school
from klaswacht.store.model import SEEN_HOST, SEEN_SEARCH, Snapshot
from proxy.blockpage import (
    REPORT_PATH,
    REQUEST_RULES,
    Request,
    block_page,
    read_request,
    refused_page,
    report_page,
    report_rule,
    request_page,
)
from proxy.devicesetup import (
    SETUP_HOST,
    DeviceSetup,
    check_host_name,
    check_proxy_address,
    pac_proxy_address,
    setup_path,
)
from proxy.metrics import ProxyMetrics

log = logging.getLogger(__name__)

# Searches travel in the body only on these methods; the body is read only for those engines.
_BODY_METHODS = ("POST",)
# How often the policy file, the accounts file and the list folders are checked for changes (seconds).
WATCH_INTERVAL = 1.0
# IT's dry run: a search text is kept this long; hosts are noted once a local day, at most this many a day.
SEEN_TEXT = 200
SEEN_HOSTS_A_DAY = 50_000
# A report or request form is a few hundred bytes; only this much of a (forged) body is read.
FORM_BYTES = 16 * 1024
# Reports and requests recorded per client (pupil or device) in any REPORT_WINDOW seconds; more are thanked for
# and not recorded. The clients remembered are at most REPORT_CLIENTS (past it, the longest quiet is forgotten).
REPORTS_PER_CLIENT = 5
REPORT_WINDOW = 600.0
REPORT_CLIENTS = 10_000
REPORTED = ("report", "request")  # the actions the limit counts
# A report or request is posted by the block page to its own host (same-origin), or sent by hand ("none": typed,
# a bookmark); a client without the header is no browser. Any other value: another website's page posted it.
_OWN_PAGE = frozenset({"same-origin", "none"})
# A refused connection (`[filter] refuse`) is recorded once per client and host in this many seconds, for at most
# REFUSAL_PAIRS pairs: a device retries its resolver or tunnel endlessly.
REFUSAL_WINDOW = 600.0
REFUSAL_PAIRS = 10_000
# Client addresses whose subnet group is remembered (a school's devices; past it the memory starts afresh).
SUBNET_GROUPS = 65_536
# Groups whose period is remembered for the current minute (past it, each is worked out per request).
MINUTE_GROUPS = 4096
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE = timedelta(minutes=1)
# The answer to a refused CONNECT (no browser shows it; curl and logs do), and the error of a refused ClientHello.
REFUSED_CONNECT = "klaswacht: niet toegestaan op het schoolnetwerk / not allowed on the school network\n"
REFUSED_TLS = "refused by klaswacht ([filter] refuse)"


@dataclass(frozen=True, slots=True)
class Chosen:
    """The interception choice for one connection, with who asked (to record a refusal)."""

    host: str  # clean_host of the CONNECT target or the server name
    interception: Interception
    address: str
    pupil: str | None
    group: str


@dataclass(slots=True)
class LocalMinute:
    """One minute of the clock (UTC) and the school's wall-clock time at its start, with the periods worked out in it.

    The timetable's times and holidays are whole minutes (and days) of local time, so the period cannot change
    inside a minute whose local time runs on at the same offset: it is worked out once per group and minute, not
    with a time-zone conversion on every request. A minute across a change of offset (or an offset of seconds) is
    not remembered (`Klaswacht._local_minute`): there every request works it out, as before.
    """

    start: datetime  # the minute's first instant (UTC); it ends before start + 1 minute
    policy: Policy  # the policy the periods are of: a reload starts afresh
    zone: ZoneInfo
    local: datetime  # naive local time at the start of the minute
    periods: dict[str, str]  # group -> period


class Refused(Exception):
    """A policy, accounts file or list change that cannot be used: the message has file:line: reason."""


@dataclass(frozen=True, slots=True)
class Loaded:
    policy: Policy
    lists: Lists
    zone: ZoneInfo
    proxyauth: str | None  # the value for mitmproxy's proxyauth option: "@FILE" or None
    version: str = ""  # of the policy and local lists (klaswacht/configversion.py), for the metrics


def accounts_path(policy: Policy) -> Path:
    """The policy's accounts file; a relative name is read next to the policy file."""
    path = Path(policy.accounts).expanduser()
    return path if path.is_absolute() else Path(policy.source).resolve().parent / path


def load_all(policy_file: str, folders: Sequence[str], strict_lists: bool) -> Loaded:
    """Policy, accounts and lists read whole, or Refused naming the first problem (file:line: reason).

    With `strict_lists`, any bad list line refuses the whole load (a reload); without, bad lines
    are skipped with a warning (the first start: the proxy must filter from its first second).
    Links in the paths are resolved once, first: when `klaswacht sync` swaps its `current` link during
    the load, policy and lists still come from one version.
    """
    policy_path, folder_paths = Path(policy_file).resolve(), [Path(f).resolve() for f in folders]
    try:
        policy = load_policy(policy_path)
        zone = ZoneInfo(policy.timezone)
    except PolicyError as e:
        raise Refused(str(e)) from e
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise Refused(f"{policy_file}:0: timezone {e}") from e
    proxyauth = None
    if policy.identity == "proxyauth":
        path = accounts_path(policy)
        try:
            HtpasswdFile.from_file(path)
        except (OSError, ValueError) as e:
            raise Refused(f"{path}:0: accounts file not usable: {e}") from e
        proxyauth = f"@{path}"
    lists = load_lists([SHIPPED_LISTS, *folder_paths], policy)
    if strict_lists and lists.errors:
        raise Refused("; ".join(map(str, lists.errors)))
    for error in lists.errors:
        log.warning("list line skipped: %s", error)
    return Loaded(policy, lists, zone, proxyauth, config_version(policy_path, folder_paths))


# Sec-Fetch-Dest of a page a pupil opens (browsers send it with every request; other clients send none,
# and count as opening a page).
_OPENED = frozenset({"document", "iframe", "frame"})


def parse_fake_clock(text: str) -> datetime | None:
    """The instant of the klaswacht_fake_clock option ("" for the real clock); ValueError if unreadable.

    A time without an offset is the school's local time in Europe/Amsterdam.
    """
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("Europe/Amsterdam"))


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sent a request, as far as the filter needs to know: never a name."""

    address: str
    pupil: str | None  # pseudonymous id from the roster, None for an unknown device
    group: str
    period: str


def client_address(flow: http.HTTPFlow) -> str:
    return _address_of(flow.client_conn)


def _address_of(client: connection.Client) -> str:
    address = str(client.peername[0]) if client.peername else ""
    return address.removeprefix("::ffff:")


def _login_of(client: connection.Client) -> str | None:
    """The proxy login of an authenticated connection (mitmproxy's proxyauth addon), if any."""
    auth = ctx.master.addons.get("proxyauth")
    found = auth.authenticated.get(client) if auth is not None else None
    return str(found[0]) if found else None


class RecentReports:
    """How many reports and requests each client had recorded lately: at most `limit` in any `window` seconds.

    Bounded: at most `limit` instants for each of at most `clients` clients; past that the client heard from
    longest ago is forgotten (it may then send `limit` more: a small loss, against memory a flood could fill).
    """

    def __init__(self, limit: int, window: float, clients: int) -> None:
        self.limit, self.window, self.clients = limit, window, clients
        self._recent: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, client: str, now: float) -> bool:
        """Whether `client` may have one more recorded at `now` (monotonic seconds); if so it is counted."""
        times = self._recent.get(client)
        if times is None:
            times = self._recent[client] = deque(maxlen=self.limit)
            while len(self._recent) > self.clients:
                self._recent.popitem(last=False)
        while times and times[0] <= now - self.window:
            times.popleft()
        self._recent.move_to_end(client)
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True

    def __len__(self) -> int:
        return len(self._recent)


class Klaswacht:
    """Enforces the school's policy on every HTTP request that reaches the proxy."""

    def __init__(self, metrics: ProxyMetrics) -> None:
        self.metrics = metrics
        # The clock of the per-client limit on reports and requests (a test replaces it to drive it).
        self.monotonic: Callable[[], float] = time.monotonic
        self._reports = RecentReports(REPORTS_PER_CLIENT, REPORT_WINDOW, REPORT_CLIENTS)
        self.policy: Policy | None = None
        self.lists: Lists | None = None
        self.zone = ZoneInfo("Europe/Amsterdam")
        self.store: Store | None = None
        # Testing: the timetable's clock starts at this instant and runs on from there (None: the real clock).
        self.fake_clock: tuple[datetime, float] | None = None
        self._watched: dict[str, tuple[int, int]] = {}
        self._watcher: asyncio.Task[None] | None = None
        # The CONNECT decision per client connection, for the ClientHello that follows (taken out by it).
        self._tunnels: weakref.WeakKeyDictionary[connection.Client, Chosen] = weakref.WeakKeyDictionary()
        # Client connections whose ClientHello was refused: no server connection is made for them.
        self._refused_clients: weakref.WeakSet[connection.Client] = weakref.WeakSet()
        # Client address -> group by the policy's subnets (bounded: cleared past SUBNET_GROUPS and on a reload).
        self._subnet_groups: dict[str, str] = {}
        # The minute the clock is in, with the periods worked out in it (`_period`).
        self._minute: LocalMinute | None = None
        # The setup host option as written, and checked (`_answer_setup`: once, not on every request).
        self._setup_host: tuple[str, str] = ("", "")
        # Refusals recorded lately, per client and host (the metrics count every one).
        self._refusals = RecentReports(1, REFUSAL_WINDOW, REFUSAL_PAIRS)
        # Hosts already noted for IT's dry run on the local day `_seen_day` (bounded; cleared when the day changes).
        self._seen_day: date | None = None
        self._seen_hosts: set[str] = set()
        # The setup host's pages (CA landing page, CA files, PAC and WPAD), answered before any decision.
        self.device_setup = DeviceSetup()

    def load(self, loader: object) -> None:
        add = loader.add_option  # type: ignore[attr-defined]
        add("klaswacht_policy", str, str(DEFAULT_POLICY),
            "The school's policy: a TOML file (schema in policies/README.md).")
        add("klaswacht_lists", Sequence[str], [],
            "Local list folders; a file in one replaces the shipped file of the same name, or adds to them.")
        add("klaswacht_period", str, "auto",
            "The period to enforce: lesson, break, outside, holiday, or auto (from the timetable and clock).")
        add("klaswacht_data_dir", str, "",
            "Folder of the store (klaswacht.db, spill files). Empty: events are not recorded.")
        add("klaswacht_database", str, "",
            "A postgresql:// URL: the store's database on that server. Empty: SQLite in klaswacht_data_dir.")
        add("klaswacht_purge", bool, True,
            "This process removes what is older than the policy's retention, every hour. Of the workers of one "
            "`klaswacht run` only the first does: one purge per gateway, not one per worker.")
        add("klaswacht_fake_clock", str, "",
            "Testing only: the timetable's clock starts at this ISO 8601 instant (local time without an "
            "offset) and runs on from there. Empty: the real clock. Grants and bans keep the real clock.")
        add("klaswacht_setup_host", str, SETUP_HOST,
            "The host name (pointed at the gateway in the school's DNS) on which the proxy itself serves the CA "
            "landing page, the CA certificate (/ca.pem, /ca.crt) and the PAC file (/proxy.pac, /wpad.dat), at "
            "any period, ban or break; it never goes upstream.")
        add("klaswacht_pac_proxy", str, "",
            "The proxy address (host:port) the PAC file sends devices to. Empty: listen_host and the port the "
            "proxy listens on; the setup host's name when it listens on every interface.")

    def configure(self, updated: set[str]) -> None:
        if "klaswacht_period" in updated and ctx.options.klaswacht_period not in (*PERIODS, "auto"):
            raise exceptions.OptionsError(
                f"klaswacht_period must be one of {', '.join((*PERIODS, 'auto'))}, "
                f"not {ctx.options.klaswacht_period!r}")
        if "klaswacht_setup_host" in updated:
            try:
                check_host_name(ctx.options.klaswacht_setup_host)
            except ValueError as e:
                raise exceptions.OptionsError(f"klaswacht_setup_host: {e}") from e
        if "klaswacht_pac_proxy" in updated and ctx.options.klaswacht_pac_proxy:
            try:
                check_proxy_address(ctx.options.klaswacht_pac_proxy)
            except ValueError as e:
                raise exceptions.OptionsError(f"klaswacht_pac_proxy: {e}") from e
        if "klaswacht_fake_clock" in updated:
            try:
                start = parse_fake_clock(ctx.options.klaswacht_fake_clock)
            except ValueError as e:
                raise exceptions.OptionsError(f"klaswacht_fake_clock: {e}") from e
            self.fake_clock = (start, time.monotonic()) if start else None
        if "klaswacht_policy" in updated or "klaswacht_lists" in updated:
            self.reload()

    def reload(self) -> None:
        """Load policy and lists whole, or keep the ones in force and say why not (OptionsError)."""
        watched = self._fingerprint()
        try:
            loaded = load_all(ctx.options.klaswacht_policy, ctx.options.klaswacht_lists, strict_lists=False)
        except Refused as e:
            self.metrics.reloads.labels("failed").inc()
            raise exceptions.OptionsError(f"policy refused: {e}") from e
        self._apply(loaded)
        self._watched = watched

    def _apply(self, loaded: Loaded) -> None:
        if ctx.options.proxyauth != loaded.proxyauth or loaded.proxyauth:
            # mitmproxy's own proxyauth addon asks for the login (HTTP 407) and checks the htpasswd file;
            # set again on every reload so that a changed accounts file is read.
            ctx.options.update(proxyauth=loaded.proxyauth)
        self.policy, self.lists, self.zone = loaded.policy, loaded.lists, loaded.zone
        self._subnet_groups = {}  # the groups' subnets may have changed
        self.metrics.reloads.labels("ok").inc()
        self.metrics.config_version(loaded.version)

    def _fingerprint(self) -> dict[str, tuple[int, int]]:
        files = [Path(ctx.options.klaswacht_policy)]
        if self.policy is not None and self.policy.identity == "proxyauth":
            files.append(accounts_path(self.policy))
        return fingerprint(files, [SHIPPED_LISTS, *map(Path, ctx.options.klaswacht_lists)])

    async def _watch(self) -> None:
        """Reload when a watched file changes; the old version stays in force if the new one is refused."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                await self.reload_if_changed()
            except Exception:  # the watcher must outlive anything a file system can do
                log.exception("reload: the check for changed files failed; trying again")

    async def reload_if_changed(self) -> bool | None:
        """Reload if a watched file changed: True when the new version is in force, False when refused."""
        watched = await asyncio.to_thread(self._fingerprint)
        if watched == self._watched:
            return None
        # Refused or not, this version is judged once; the next change is tried again.
        self._watched = watched
        try:
            loaded = await asyncio.to_thread(load_all, ctx.options.klaswacht_policy, ctx.options.klaswacht_lists,
                                             True)
            self._apply(loaded)
        except (Refused, exceptions.OptionsError) as e:
            self.metrics.reloads.labels("failed").inc()
            log.error("reload refused, the version in force stays: %s", e)
            return False
        log.warning("reloaded: %s and %d list files, version %s", loaded.policy.source, len(loaded.lists.files),
                    loaded.version)
        return True

    async def running(self) -> None:
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="klaswacht-watch")
        if ctx.options.klaswacht_data_dir and self.store is None:
            policy = self.policy
            self.store = Store(Path(ctx.options.klaswacht_data_dir),
                               events_days=policy.events_days if policy else 28,
                               audit_days=policy.audit_days if policy else 365,
                               database_url=ctx.options.klaswacht_database or None,
                               school=gateway_school(policy.school_id if policy else DEFAULT_SCHOOL),
                               purge=ctx.options.klaswacht_purge)
            # strict=False: the proxy starts even while the database is unavailable.
            await self.store.open(strict=False)

    async def done(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        if self.store is not None:
            await self.store.close()
            self.store = None

    # --- the hooks

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        with self.metrics.deciding(flow.metadata):
            request = flow.request
            if request.path.startswith(REPORT_PATH):
                # Answered once the body is in (a form post), in `request`.
                flow.metadata["klaswacht_report"] = True
                return
            host = request.pretty_host  # parses the Host header: once a hook, not once a use
            if self._answer_setup(flow, host):  # the setup host: CA landing page, CA files, PAC, WPAD
                return
            method = request.method
            query = extract_search_query(request.pretty_url, method)
            if (query is None and method in _BODY_METHODS
                    and find_engine(host, request.path.partition("?")[0]) is not None):
                flow.metadata["klaswacht_body_search"] = True  # decided in `request`, with the body
                return
            self._decide(flow, query, host)

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        if flow.metadata.get("klaswacht_report"):
            await self._report(flow)
            return
        if not flow.metadata.get("klaswacht_body_search"):
            return
        with self.metrics.deciding(flow.metadata):
            body = flow.request.get_content(strict=False) or b""
            query = extract_search_query(flow.request.pretty_url, flow.request.method, body)
            self._decide(flow, query, flow.request.pretty_host)

    # One observation per request of the time all deciding hooks took together (the histogram of DESIGN.md).
    # Answered by the proxy or by the server, a flow ends in `response` or `error`.

    def response(self, flow: http.HTTPFlow) -> None:
        self.metrics.observe_decision(flow.metadata)

    def error(self, flow: http.HTTPFlow) -> None:
        self.metrics.observe_decision(flow.metadata)

    # --- selective interception: decrypt only what a rule needs to look into; refuse what needs no block page

    def _choose(self, host: str, client: connection.Client) -> Chosen | None:
        """The per-host choice; None when there is nothing to choose (passthrough off, and the host in no
        category the policy refuses: every connection is decrypted, as mitmproxy does by itself)."""
        policy, lists = self.policy, self.lists
        if policy is None or lists is None:
            return None
        if not policy.passthrough and (not policy.refuse or lists.hosts.category(host) not in policy.refuse):
            return None
        address = _address_of(client)
        context, pupil, group = self._context(address, _login_of(client))
        return Chosen(clean_host(host), interception(host, context), address, pupil, group)

    def connect_choice(self, host: str, address: str) -> Chosen | None:
        """The front door's question (proxy/frontdoor.py): the choice for a tunnel to `host` from `address`, or
        None when mitmproxy must see every connection (passthrough off, logins to the proxy, nothing loaded)."""
        policy, lists = self.policy, self.lists
        if policy is None or lists is None or not policy.passthrough or policy.identity == "proxyauth":
            return None
        context, pupil, group = self._context(address, None)
        return Chosen(clean_host(host), interception(host, context), address, pupil, group)

    def refused(self, chosen: Chosen) -> None:
        """The front door closed a tunnel whose server name is refused: counted and recorded like a refusal."""
        self._refuse(chosen)

    def passed_through(self, host: str) -> None:
        """The front door relays a tunnel to `host` itself: counted and noted as `tls_clienthello` does."""
        self._note_host(host)
        self.metrics.interceptions.labels("passthrough").inc()

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        with self.metrics.deciding(flow.metadata):
            chosen = self._choose(flow.request.host, flow.client_conn)
            if chosen is None:
                return
            flow.metadata["klaswacht_interception"] = chosen.interception
            if chosen.interception.choice == "refuse":
                # Answered here: no tunnel, nothing sent upstream (connection_strategy lazy), no TLS to decrypt.
                self._refuse(chosen)
                flow.response = http.Response.make(403, REFUSED_CONNECT, {"Content-Type": "text/plain; charset=utf-8"})
            else:
                self._tunnels[flow.client_conn] = chosen  # the ClientHello that follows reuses it
        if flow.response:
            self.metrics.observe_decision(flow.metadata)

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        client = data.context.client
        sni = data.client_hello.sni
        tunnel = self._tunnels.pop(client, None)
        if tunnel is not None and (not sni or clean_host(sni) == tunnel.host):
            chosen: Chosen | None = tunnel  # the CONNECT's choice for the same host: not worked out again
        else:
            chosen = self._choose(sni, client) if sni else None
        if chosen is None or self.policy is None:
            return
        choice = chosen.interception.choice
        if choice == "refuse":
            # Not decrypted, and every server connection of this client is killed before it is made (in
            # `server_connect`: the server itself, or a parent proxy's tunnel), so mitmproxy closes the pupil's
            # connection and nothing leaves.
            data.ignore_connection = True
            self._refused_clients.add(client)
            self._refuse(chosen)
            return
        if not self.policy.passthrough:
            return
        if choice == "passthrough":
            data.ignore_connection = True
            self._note_host(chosen.host)  # never seen again in a request: noted here for the dry run
        self.metrics.interceptions.labels(choice).inc()

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        if data.client in self._refused_clients:
            data.server.error = REFUSED_TLS

    def _refuse(self, chosen: Chosen) -> None:
        """Count and record a refusal like a block (rule, category, host: nothing of the content, which was
        never seen); one event per client and host in REFUSAL_WINDOW (devices retry a resolver all the time)."""
        verdict = chosen.interception.verdict
        if verdict is None:
            return
        self.metrics.refused(verdict.category)
        self.metrics.verdict(verdict.action, verdict.rule, verdict.category)
        if self.store is None:
            return
        who = chosen.pupil or self.store.client_for(chosen.address)
        if self._refusals.allow(f"{who} {chosen.host}", self.monotonic()):
            self.store.record(Event(verdict.action, verdict.rule, verdict.category, chosen.host, verdict.terms, who,
                                    chosen.group))

    # --- the work

    def _answer_setup(self, flow: http.HTTPFlow, host: str) -> bool:
        """Answer a request for device setup (proxy/devicesetup.py) with the proxy's own response: True if it was.
        `host` is the request's pretty_host."""
        option = ctx.options.klaswacht_setup_host
        written, setup_host = self._setup_host
        if option != written:
            setup_host = check_host_name(option)
            self._setup_host = (option, setup_host)
        route = setup_path(host, flow.request.path, setup_host)
        if route is None:
            return False
        port = flow.request.port
        default = 443 if flow.request.scheme == "https" else 80
        base = f"{flow.request.scheme}://{setup_host}" + (f":{port}" if port != default else "")
        flow.response = self.device_setup.response(route, flow.request.method, base, ctx.options.confdir,
                                                   self._pac_proxy(setup_host), setup_host)
        return True

    def _pac_proxy(self, setup_host: str) -> str:
        """The proxy address of the PAC file: the option, else where this proxy listens."""
        if ctx.options.klaswacht_pac_proxy:
            return check_proxy_address(ctx.options.klaswacht_pac_proxy)
        host, port = ctx.options.listen_host, ctx.options.listen_port
        if not port:
            server = ctx.master.addons.get("proxyserver")
            listening = server.listen_addrs() if server is not None else []
            port = listening[0][1] if listening else 8080
        return pac_proxy_address(host, port, setup_host)

    def _who(self, address: str, snapshot: Snapshot, login: str | None = None) -> tuple[str | None, str]:
        """(pupil id, group) of a request: by proxy login when the policy asks for it, else by address
        (the roster's devices); the group from the roster, then the group's subnet, then the default."""
        assert self.policy is not None
        if self.policy.identity == "proxyauth":
            # The login is the pupil number (leerlingnummer): only its pseudonymous id leaves the store.
            pupil = self.store.pupil_id(login) if login and self.store is not None else None
        else:
            pupil = snapshot.pupil_at(address)
        group = snapshot.group_of(pupil)
        if group is None:
            group = self._subnet_group(address)
        return pupil, group

    def _subnet_group(self, address: str) -> str:
        """The group whose subnet holds `address`, else the default; remembered per address until the policy is
        reloaded (parsing the address and walking the subnets was the dearest step of a connection's choice)."""
        assert self.policy is not None
        group = self._subnet_groups.get(address)
        if group is None:
            if len(self._subnet_groups) >= SUBNET_GROUPS:
                self._subnet_groups.clear()
            group = self._subnet_groups[address] = self._find_subnet_group(self.policy, address)
        return group

    @staticmethod
    def _find_subnet_group(policy: Policy, address: str) -> str:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return policy.default_group
        for g in policy.groups:
            if any(ip in net for net in g.subnets):
                return g.name
        return policy.default_group

    def now(self) -> datetime:
        """The timetable's clock: the real one, or the fake clock of a test running on from its start."""
        if self.fake_clock is None:
            return datetime.now(UTC)
        start, started = self.fake_clock
        return start + timedelta(seconds=time.monotonic() - started)

    def _period(self, group: str) -> str:
        policy = self.policy
        assert policy is not None
        pinned = ctx.options.klaswacht_period
        if pinned != "auto":
            return str(pinned)
        now = self.now()
        minute = self._local_minute(now)
        if minute is None:
            return period_at(policy, group, local_time(now, self.zone))
        period = minute.periods.get(group)
        if period is None:
            period = period_at(policy, group, minute.local)
            if len(minute.periods) < MINUTE_GROUPS:
                minute.periods[group] = period
        return period

    def _local_minute(self, now: datetime) -> LocalMinute | None:
        """The minute `now` is in, for the policy and time zone in force; None when the period may change inside it
        (a change of UTC offset inside the minute, an offset of seconds, or a timetable with times of seconds)."""
        policy = self.policy
        if policy is None:
            return None
        minute = self._minute
        if (minute is not None and minute.start <= now < minute.start + _MINUTE and minute.policy is policy
                and minute.zone is self.zone):
            return minute
        start = _EPOCH + (now - _EPOCH) // _MINUTE * _MINUTE
        local = local_time(start, self.zone)
        last = _MINUTE - timedelta(microseconds=1)
        if local.second or local.microsecond or local_time(start + last, self.zone) - local != last \
                or not whole_minutes(policy):
            return None
        self._minute = LocalMinute(start, policy, self.zone, local, {})
        return self._minute

    def _context(self, address: str, login: str | None) -> tuple[Context, str | None, str]:
        """The context of a request from `address` (and login): period, the group's grants, the pupil's ban."""
        assert self.policy is not None and self.lists is not None
        snapshot = self.store.snapshot() if self.store else Snapshot(datetime.now(UTC))
        now = datetime.now(UTC)  # grants and bans end on the real clock, as the store keeps them
        pupil, group = self._who(address, snapshot, login)
        context = Context(self.policy, self.lists.terms, self.lists.hosts, self._period(group),
                          snapshot.grants_for(group, now), snapshot.banned(pupil, now))
        return context, pupil, group

    def _decide(self, flow: http.HTTPFlow, query: str | None, host: str) -> None:
        """Decide on the request to `host` (its pretty_host) with search text `query`."""
        if self.policy is None or self.lists is None:
            return
        self.metrics.requests.inc()
        address = client_address(flow)
        auth = flow.metadata.get("proxyauth")
        context, pupil, group = self._context(address, str(auth[0]) if auth else None)
        self._note_host(host)
        opened = flow.request.headers.get("Sec-Fetch-Dest", "document") in _OPENED
        if query is not None and query.strip() and opened and self.store is not None:
            # For IT's dry run: the search as typed, with no pupil, device, group or host (not every prefix
            # the search box's autocomplete asked about while it was typed).
            self.store.record(Event(SEEN_SEARCH, "none", text=query[:SEEN_TEXT]))
        verdict = decide(Facts(host, query), context)
        if verdict.rule == "closed-category" and not verdict.terms:
            # The host list's entry that closed it, as a search block names its terms: the block event and a
            # pupil's request to open it name the same list entry (IT's over-blocking view joins them).
            entry = context.hosts.lookup(host)
            verdict = dataclasses.replace(verdict, terms=(entry.domain,) if entry else ())
        # For the addons after this one (outgoing content): who asked, in which group and period.
        flow.metadata["klaswacht_identity"] = Identity(address, pupil, group, context.period)
        flow.metadata["klaswacht_verdict"] = verdict
        self.metrics.verdict(verdict.action, verdict.rule, verdict.category)
        self._record(verdict, host, address, pupil, group, searched=query is not None, opened=opened)
        if verdict.action == "block":
            page = block_page(verdict, self._request_for(verdict, host))
            flow.response = http.Response.make(403, page, {
                "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})
            return
        if self.policy.safesearch:
            path, headers = enforce_safesearch(host, flow.request.path)
            flow.request.path = path
            for name, value in headers:
                flow.request.headers[name] = value

    def _record(self, verdict: Verdict, host: str, address: str, pupil: str | None, group: str,
                searched: bool, opened: bool = True) -> None:
        if self.store is None:
            return
        if verdict.action == "allow":
            if searched:  # an allowed search is counted, never kept with its text
                self.store.record(Event("search", verdict.rule, host=host, group=group))
            return
        # A search alert is a self-harm signal (the policy's alert categories): severe, so care staff see it.
        # A plain block is an event for the reports, not an alert.
        severity = "severe" if verdict.alert else None
        if not opened and severity is None:
            # The favicon, scripts and autocomplete calls of a page are blocked too, but what a pupil did is
            # the page they opened: its block is the one event (the metrics still count every verdict).
            return
        self.store.record(Event(verdict.action, verdict.rule, verdict.category, host, verdict.terms,
                                pupil or self.store.client_for(address), group, severity))

    def _request_for(self, verdict: Verdict, host: str) -> Request | None:
        """What the block page's "Ik heb dit nodig voor mijn opdracht" form sends, for a block that a
        teacher's grant can lift for a lesson; None for any other block."""
        assert self.policy is not None
        if verdict.rule not in REQUEST_RULES or verdict.category in (None, *self.policy.never_open):
            return None
        return Request(verdict.rule, verdict.category, clean_host(host), verdict.terms)

    def _note_host(self, host: str) -> None:
        """Record `host` for IT's dry run the first time this worker sees it on the school's local day."""
        if self.store is None:
            return
        now = self.now()
        minute = self._local_minute(now)
        day = minute.local.date() if minute is not None else local_time(now, self.zone).date()
        if day != self._seen_day:
            self._seen_day, self._seen_hosts = day, set()
        name = clean_host(host)
        if not name or name in self._seen_hosts or len(self._seen_hosts) >= SEEN_HOSTS_A_DAY:
            return
        self._seen_hosts.add(name)
        self.store.record(Event(SEEN_HOST, "none", host=name))

    async def _report(self, flow: http.HTTPFlow) -> None:
        """The report page: GET shows it; POST files a report, or a request to open a block for an
        assignment, as an alert for the teacher. Answered before any decision: also in a break or a ban.

        A POST that another website's page sent (Sec-Fetch-Site cross-site or same-site) is answered 403 with a
        page that says it was not sent, and nothing is recorded. Of a client's reports and requests at most
        REPORTS_PER_CLIENT in REPORT_WINDOW seconds are recorded; past that the pupil is thanked all the same
        (pressing twice is no fault) and only the metric counts it. The limit is kept in the database, so that
        it holds across the workers of `klaswacht run --workers N` (`_record_limited`).
        """
        status = 200
        if flow.request.method != "POST":
            page = report_page(False)
        elif flow.request.headers.get("Sec-Fetch-Site", "none").strip().lower() not in _OWN_PAGE:
            self.metrics.reports_dropped.labels("cross-site").inc()
            status, page = 403, refused_page()
        else:
            body = (flow.request.get_content(strict=False) or b"")[:FORM_BYTES]
            form = parse_qs(body.decode("utf-8", "replace"))
            asking = form.get("kind") == ["request"]
            page = request_page() if asking else report_page(True)
            sender = self._sender(flow)
            event = self._request_event(flow, form, sender) if asking else self._report_event(flow, form, sender)
            if event is not None and not await self._record_limited(event):
                self.metrics.reports_dropped.labels("limit").inc()
            elif not asking:
                self.metrics.reports.inc()
        flow.response = http.Response.make(status, page, {
            "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})

    def _sender(self, flow: http.HTTPFlow) -> tuple[str, str] | None:
        """(pseudonymous client id, group) of whoever sent a report or request; None when nothing is recorded
        (no store, or no policy yet)."""
        if self.store is None or self.policy is None:
            return None
        address = client_address(flow)
        auth = flow.metadata.get("proxyauth")
        pupil, group = self._who(address, self.store.snapshot(), str(auth[0]) if auth else None)
        return pupil or self.store.client_for(address), group

    def _report_event(self, flow: http.HTTPFlow, form: dict[str, list[str]],
                      sender: tuple[str, str] | None) -> Event | None:
        if self.store is None or sender is None:
            return None
        client, group = sender
        rule = report_rule(form)
        return Event("report", "report", None, flow.request.pretty_host, (rule,) if rule else (), client, group,
                     "normal")

    def _request_event(self, flow: http.HTTPFlow, form: dict[str, list[str]],
                       sender: tuple[str, str] | None) -> Event | None:
        if self.store is None or self.policy is None or self.lists is None or sender is None:
            return None
        client, group = sender
        asked = read_request(form, self.policy, self.lists.terms, self.lists.hosts)
        return Event("request", asked.rule, asked.category, asked.host, asked.entries, client, group, "normal")

    async def _record_limited(self, event: Event) -> bool:
        """Record a report or request unless its client had REPORTS_PER_CLIENT of them in REPORT_WINDOW: False if not.

        Counted and written in one transaction of the database, so the limit holds across the workers that share
        it. While the database does not answer, this worker's own count stands in (RecentReports, on the monotonic
        clock) and the event waits in the queue as any other: lost is nothing, the limit is per worker meanwhile.
        """
        assert self.store is not None and event.client is not None
        try:
            return await self.store.record_limited(event, REPORTED, REPORTS_PER_CLIENT,
                                                   event.time - timedelta(seconds=REPORT_WINDOW))
        except StoreError as e:
            log.warning("reports: the database did not answer (%s): this worker counts the limit alone", e)
        if not self._reports.allow(event.client, self.monotonic()):
            return False
        self.store.record(event)
        return True
