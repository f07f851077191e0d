"""A board's bundle: one policy and its list folders in one signed archive, for `klaswacht sync` on each gateway.

`klaswacht bundle keygen` makes the board's ed25519 key pair; `klaswacht bundle make` checks the policy
and lists as a gateway's reload would (strictly: one bad line refuses the bundle) and writes a tar.gz of

- `manifest.json`: format, the version id (klaswacht/configversion.py: derived from the content, so the
  same files give the same id on the board and on every gateway), when it was made, and every file with
  its size and sha256;
- `manifest.sig`: the board's ed25519 signature of `manifest.json`, in base64;
- `policy.toml` and `lists/<path>`: the policy and the list files the loader reads (a later `--lists`
  folder's file replaces an earlier one's, as on the gateway).

`extract_verified` is the gateway's side: it unpacks into an empty folder and refuses (BundleError)
anything but a clean bundle signed by the board: other names, absolute paths, `..`, links or devices,
a file missing, extra or of another size or hash than the manifest says, or a bad signature.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from filters.policy import Policy, PolicyError
from klaswacht.configversion import LISTS_DIR, POLICY_NAME, config_files, config_version, version_of
from klaswacht.loading import SHIPPED_LISTS, load_lists, load_policy

FORMAT = "klaswacht-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MAX_MEMBERS = 10_000
MAX_MANIFEST = 16 * 2**20


class BundleError(Exception):
    """A bundle that cannot be made or used, with the reason for people."""


# --- keys


def generate_key(private: Path) -> Path:
    """Write a new ed25519 key (PEM, 0600) to `private` and its public key next to it (`.pub`); the public path."""
    key = Ed25519PrivateKey.generate()
    public = private.with_name(private.name.removesuffix(".key") + ".pub")
    for path in (private, public):
        if path.exists():
            raise BundleError(f"{path} exists: a board key is never overwritten (move it aside first)")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return public


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise BundleError(f"{path}: not a readable private key ({e})") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path}: not an ed25519 key (make one with: klaswacht bundle keygen)")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError) as e:
        raise BundleError(f"{path}: not a readable public key ({e})") from e
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{path}: not an ed25519 public key (the board's .pub from klaswacht bundle keygen)")
    return key


# --- checking a configuration as a gateway's reload would


def check_config(policy_file: Path, folders: list[Path]) -> Policy:
    """The policy, if it and the lists load without a single error; BundleError naming the first problem."""
    try:
        policy = load_policy(policy_file)
    except PolicyError as e:
        raise BundleError(f"policy refused: {e}") from e
    lists = load_lists([SHIPPED_LISTS, *folders], policy)
    if lists.errors:
        more = f" (and {len(lists.errors) - 1} more)" if len(lists.errors) > 1 else ""
        raise BundleError(f"lists refused: {lists.errors[0]}{more}")
    return policy


# --- making


def make(policy_file: Path, folders: list[Path], key: Ed25519PrivateKey, target: Path) -> dict[str, Any]:
    """Write the signed bundle `target` (replaced atomically); its manifest."""
    for folder in folders:
        if not folder.is_dir():
            raise BundleError(f"{folder}: not a folder")
    check_config(policy_file, folders)
    files = config_files(policy_file, folders)
    blobs = {name: path.read_bytes() for name, path in files.items()}
    digests = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
    entries = [{"path": name, "size": len(blobs[name]), "sha256": digest} for name, digest in sorted(digests.items())]
    manifest: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "version": version_of(digests.items()),
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "files": entries}
    if manifest["version"] != config_version(policy_file, folders):  # a file changed while it was read
        raise BundleError("the policy or a list changed while the bundle was made: make it again")
    text = json.dumps(manifest, indent=2).encode() + b"\n"
    signature = base64.b64encode(key.sign(text)) + b"\n"
    target = target.absolute()
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name, data in [(MANIFEST, text), (SIGNATURE, signature), *sorted(blobs.items())]:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, int(datetime.now(UTC).timestamp())
                tar.addfile(info, io.BytesIO(data))
            tar.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(partial, 0o644)  # served by a web server
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return manifest


# --- the gateway's side


def _safe_name(name: str) -> str:
    """The member's name if it may be in a bundle; BundleError otherwise."""
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise BundleError(f"unsafe name {name!r} in the archive")
    if name not in (MANIFEST, SIGNATURE, POLICY_NAME) and parts[0] != LISTS_DIR:
        raise BundleError(f"unexpected member {name!r}: a bundle holds {MANIFEST}, {SIGNATURE}, "
                          f"{POLICY_NAME} and {LISTS_DIR}/")
    return name


def _read_manifest(data: bytes, signature: bytes | None, key: Ed25519PublicKey) -> dict[str, Any]:
    if signature is None:
        raise BundleError(f"not signed (no {SIGNATURE}): only bundles signed with the board's key are used")
    try:
        key.verify(base64.b64decode(signature.strip(), validate=True), data)
    except (InvalidSignature, ValueError) as e:
        raise BundleError("the signature does not match the board's key: changed, damaged or signed by another "
                          "key") from e
    try:
        manifest = json.loads(data)
        if manifest["format"] != FORMAT or int(manifest["format_version"]) > FORMAT_VERSION:
            raise BundleError(f"not a {FORMAT} of a format this klaswacht reads")
        for entry in manifest["files"]:
            _safe_name(str(entry["path"]))
            int(entry["size"])
            str(entry["sha256"])
        str(manifest["version"])
    except (ValueError, KeyError, TypeError) as e:
        raise BundleError(f"the manifest is unreadable ({e!r})") from e
    return dict(manifest)


def extract_verified(archive: IO[bytes], into: Path, key: Ed25519PublicKey, max_unpacked: int) -> dict[str, Any]:
    """Unpack the bundle `archive` into the empty folder `into` and verify it; its manifest, or BundleError.

    On BundleError `into` may hold part of the files: the caller throws the folder away.
    """
    archive.seek(0)
    found: dict[str, tuple[int, str]] = {}  # name -> (size, sha256) of what was unpacked
    manifest_data: bytes | None = None
    signature: bytes | None = None
    total = 0
    try:
        with tarfile.open(fileobj=archive, mode="r:gz") as tar:
            for count, member in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise BundleError(f"more than {MAX_MEMBERS} members")
                name = _safe_name(member.name)
                if member.isdir():
                    if name.split("/")[0] != LISTS_DIR:
                        raise BundleError(f"unexpected folder {name!r}")
                    continue
                if not member.isfile():
                    raise BundleError(f"{name!r} is a link or device: a bundle holds plain files only")
                if name in found or (name == MANIFEST and manifest_data is not None) or (
                        name == SIGNATURE and signature is not None):
                    raise BundleError(f"{name!r} appears twice in the archive")
                total += member.size
                if total > max_unpacked:
                    raise BundleError(f"more than {max_unpacked // 2**20} MB unpacked")
                handle = tar.extractfile(member)
                if handle is None:  # pragma: no cover - a regular file always has a handle
                    raise BundleError(f"{name!r} cannot be read")
                if name in (MANIFEST, SIGNATURE):
                    data = handle.read(min(member.size, MAX_MANIFEST) + 1)
                    if len(data) > MAX_MANIFEST:
                        raise BundleError(f"{name} is too large")
                    if name == MANIFEST:
                        manifest_data = data
                    else:
                        signature = data
                    continue
                found[name] = _write(handle, into / name)
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:  # gzip.BadGzipFile is an OSError
        raise BundleError(f"not a readable gzip tar archive: {e}") from e
    if manifest_data is None:
        raise BundleError(f"no {MANIFEST}: not a klaswacht bundle")
    manifest = _read_manifest(manifest_data, signature, key)
    listed = {str(e["path"]): (int(e["size"]), str(e["sha256"])) for e in manifest["files"]}
    extra, missing = sorted(set(found) - set(listed)), sorted(set(listed) - set(found))
    if extra or missing:
        raise BundleError(f"the archive does not match its manifest (not listed: {extra}, absent: {missing})")
    for name, (size, digest) in found.items():
        if (size, digest) != listed[name]:
            raise BundleError(f"{name}: size or sha256 differs from the manifest")
    if POLICY_NAME not in found:
        raise BundleError(f"no {POLICY_NAME} in the bundle")
    if version_of((name, digest) for name, (_, digest) in found.items()) != manifest["version"]:
        raise BundleError("the manifest's version is not the one its files give")
    return manifest


def _write(source: IO[bytes], path: Path) -> tuple[int, str]:
    """Copy `source` to the new file `path` (0644, fsynced): (size, sha256)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        while chunk := source.read(1 << 16):
            digest.update(chunk)
            size += len(chunk)
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    return size, digest.hexdigest()


# --- command line


def cmd_bundle(args: argparse.Namespace) -> int:
    try:
        if args.bundle_command == "keygen":
            public = generate_key(Path(args.key))
            print(f"board key: {args.key} (mode 0600: keep it off the gateways); public key for every gateway's "
                  f"klaswacht sync --key: {public}")
            return 0
        manifest = make(Path(args.policy), [Path(f) for f in args.lists], load_private_key(Path(args.key)),
                        Path(args.out))
    except BundleError as e:
        print(f"klaswacht bundle: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"klaswacht bundle: {e}", file=sys.stderr)
        return 1
    print(f"bundle: {args.out} version {manifest['version']} ({len(manifest['files'])} files, signed)")
    return 0


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `bundle keygen` and `bundle make` on the `klaswacht` parser."""
    p = sub.add_parser("bundle", help="for a board: make the signing key, and signed bundles of a policy and lists "
                                      "for klaswacht sync")
    bundle_sub = p.add_subparsers(dest="bundle_command", required=True)
    k = bundle_sub.add_parser("keygen", help="make the board's ed25519 key pair (KEY, 0600, and KEY's .pub)")
    k.add_argument("key", metavar="KEY", help="the private key file to write, e.g. board.key (board.pub next to it)")
    k.set_defaults(func=cmd_bundle)
    m = bundle_sub.add_parser(
        "make", help="check a policy and its list folders and write them as one signed bundle",
        description="Check the policy and the list folders as a gateway's reload would (one bad line refuses the "
                    "bundle), and write them with a manifest (sha256 of every file, a version id derived from the "
                    "content) signed with the board's key. Serve the file from any web server that sends ETags; "
                    "gateways fetch it with klaswacht sync URL.")
    m.add_argument("--policy", required=True, help="the policy TOML file")
    m.add_argument("--lists", action="append", default=[], metavar="DIR",
                   help="a list folder (repeatable; a later folder's file replaces an earlier one's)")
    m.add_argument("--key", required=True, help="the board's private key (klaswacht bundle keygen)")
    m.add_argument("--out", required=True, metavar="FILE", help="the bundle to write (replaced atomically)")
    m.set_defaults(func=cmd_bundle)
