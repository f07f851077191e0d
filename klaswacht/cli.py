"""klaswacht: the one command line of the product."""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from filters.decide import Context, Facts, decide
from filters.policy import PERIODS, PolicyError
from klaswacht import backup, bundle, checks, doctor, evaluate, explaining, listsupdate, store_cli, sync
from klaswacht.loading import DEFAULT_POLICY, SHIPPED_LISTS, Lists, load_lists, load_policy
from klaswacht.store import DATABASE_ENV, SCHOOL_ENV, default_data_dir, default_database_url

# Searches on the command line are judged as if typed into this engine.
SEARCH_HOST = "www.google.com"


def _context(args: argparse.Namespace) -> tuple[Context, Lists]:
    policy = load_policy(args.policy)
    lists = load_lists([SHIPPED_LISTS, *args.lists], policy)
    for error in lists.errors:
        print(f"warning: {error}", file=sys.stderr)
    return Context(policy, lists.terms, lists.hosts, args.period), lists


def cmd_classify(args: argparse.Namespace) -> int:
    context, _ = _context(args)
    # Any bytes give a verdict: undecodable input is replaced, never an exception.
    source = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n")
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", errors="replace", newline="\n")
    for raw in source:
        line = raw.rstrip("\r\n")
        if args.hosts:
            verdict = decide(Facts(line), context)
            entry = context.hosts.lookup(line)
            record: dict[str, object] = {"host": line, "category": entry.category if entry else None,
                                         "blocked_in_lessons": verdict.action == "block"}
        else:
            verdict = decide(Facts(SEARCH_HOST, line), context)
            record = {"query": line, "blocked": verdict.action == "block", "category": verdict.category,
                      "terms": list(verdict.terms), "alert": verdict.alert}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()
    out.detach()
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    context, _ = _context(args)
    print(explaining.explain(args.input, context, SEARCH_HOST))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    if args.what == "policy":
        return checks.check_policy(Path(args.path))
    return checks.check_lists(Path(args.path))


def cmd_eval(args: argparse.Namespace) -> int:
    context, _ = _context(args)
    return evaluate.evaluate(Path(args.file), context, SEARCH_HOST, show_misses=args.misses)


def cmd_run(args: argparse.Namespace) -> int:
    from klaswacht import run  # the proxy's imports (mitmproxy) are only paid for by `run`

    return run.run(args)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", default=str(DEFAULT_POLICY),
                        help="policy TOML file (default: the shipped primary-school policy)")
    parser.add_argument("--lists", action="append", type=Path, default=[], metavar="DIR",
                        help="a local list folder whose files replace or add to the shipped lists")
    parser.add_argument("--period", choices=PERIODS, default="lesson",
                        help="the period to judge in (default: lesson)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="klaswacht", description="Content filter for pupils' devices.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("classify", help="judge search queries (or hosts) read one a line from stdin")
    p.add_argument("--hosts", action="store_true", help="read host names instead of search queries")
    _common(p)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("explain", help="say which list line and rule decide a query, URL or host")
    p.add_argument("input", metavar="QUERY_OR_URL")
    _common(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("check", help="check a policy file or a list folder; exit 1 on any problem")
    p.add_argument("what", choices=("policy", "lists"))
    p.add_argument("path")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("eval", help="score the filter on a labelled TSV file, with a confusion table")
    p.add_argument("file")
    p.add_argument("--misses", action="store_true", help="also list every wrong answer")
    _common(p)
    p.set_defaults(func=cmd_eval)

    store_cli.add_commands(sub)
    backup.add_commands(sub, default_data_dir())
    doctor.add_command(sub, default_data_dir())
    listsupdate.add_command(sub, default_data_dir())
    bundle.add_command(sub)
    sync.add_command(sub, default_data_dir())

    p = sub.add_parser("run", help="start proxy, dashboard and metrics on loopback; stop with Ctrl-C or SIGTERM")
    p.add_argument("--policy", default=str(DEFAULT_POLICY),
                   help="policy TOML file (default: the shipped primary-school policy)")
    p.add_argument("--lists", action="append", type=Path, default=[], metavar="DIR",
                   help="a local list folder whose files replace or add to the shipped lists")
    p.add_argument("--data-dir", default=str(default_data_dir()), metavar="DIR",
                   help="database, CA and spill files (default: %(default)s)")
    p.add_argument("--database", default=default_database_url(), metavar="URL",
                   help=f"a postgresql:// URL: keep the data on that server (default: ${DATABASE_ENV}, else SQLite)")
    p.add_argument("--school", metavar="ID",
                   help=f"which school of a board this gateway is (default: ${SCHOOL_ENV}, else the policy's "
                        "[school] id)")
    p.add_argument("--proxy-port", type=int, default=8080, help="0 picks a free port (default: %(default)s)")
    p.add_argument("--dashboard-port", type=int, default=8081, help="0 picks a free port (default: %(default)s)")
    p.add_argument("--metrics-port", type=int, default=9464, help="0 picks a free port (default: %(default)s)")
    p.add_argument("--period", choices=(*PERIODS[:3], "auto"), default="auto",
                   help="auto: from the timetable and the clock; the others pin the period")
    p.add_argument("--upstream", default="", metavar="URL", help="send allowed traffic through this parent proxy")
    p.add_argument("--transparent", action="store_true",
                   help="transparent proxy on a gateway: the firewall redirects the pupils' TCP 80 and 443 to "
                        "--proxy-port (deploy/nftables/klaswacht.nft); not with --upstream")
    p.add_argument("--setup-host", default="klaswacht.school", metavar="NAME",
                   help="the name (in the school's DNS, pointing at the gateway) on which the proxy serves the CA "
                        "landing page and the PAC file (default: %(default)s)")
    p.add_argument("--pac-proxy", default="", metavar="HOST:PORT",
                   help="the proxy address the PAC file names (default: the address the proxy listens on)")
    p.add_argument("--listen-host", default=None, metavar="ADDRESS",
                   help="address the proxy listens on: the gateway's address on the pupils' network in a school "
                        "(default: 127.0.0.1; with --transparent every address, IPv4 and IPv6)")
    p.add_argument("--metrics-host", default="127.0.0.1", metavar="ADDRESS",
                   help="address the metrics endpoint listens on (default: %(default)s)")
    p.add_argument("--dashboard-host", default="127.0.0.1", metavar="ADDRESS",
                   help="address the staff dashboard listens on; put it behind HTTPS when it is not loopback "
                        "(default: %(default)s)")
    p.add_argument("--trusted-proxy", default="", metavar="ADDRESS",
                   help="the HTTPS reverse proxy in front of the dashboard, whose X-Forwarded-For is believed")
    p.add_argument("--secure-cookies", action="store_true",
                   help="mark the dashboard's session cookie Secure (staff reach it over HTTPS)")
    p.add_argument("--allow-gateway-addresses", action="store_true",
                   help="let pupils reach this machine's own addresses through the proxy (never the dashboard, metrics "
                        "or database ports): for a school service on the gateway, or a test's servers on loopback")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="proxy processes, all on the one proxy address (default: one per core)")
    # Testing only, so not in --help: the timetable's clock starts at this ISO 8601 instant and runs on.
    p.add_argument("--fake-clock", default="", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PolicyError as e:
        print(f"klaswacht: policy refused: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
