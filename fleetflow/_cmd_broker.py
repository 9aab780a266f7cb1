"""`fleetflow broker`: run the embedded broker, manage its users, write Mosquitto config."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from fleetflow._data import data_root
from fleetflow._errors import CliError, port_in_use
from fleetflow._parser import add_log_level

_ANON_WARNING = """\
fleetflow broker: ************************************************************
fleetflow broker: WARNING: ANONYMOUS DEVELOPMENT MODE (--allow-anonymous-dev)
fleetflow broker: Clients WITHOUT a user name are let in with the ADMIN ACL:
fleetflow broker: they may read and write EVERY topic. Users with a name still
fleetflow broker: need their password and keep their own ACL.
fleetflow broker: Never use this on a network you do not fully control.
fleetflow broker: ************************************************************"""


def _env_int(name: str, default: int | None) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise CliError(f"{name}={value!r} is not a port number") from None


def _passwd_flag(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument(
        "--passwd", type=Path, default=default, metavar="FILE",
        help="user file (env FLEETFLOW_BROKER_PASSWD; default DATA/passwd, DATA being env "
             "FLEETFLOW_DATA or ./.fleetflow)",
    )


def _listener_flags(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument("--port", type=int, default=default,
                   help="MQTT port (env FLEETFLOW_BROKER_PORT; default 1883)")
    p.add_argument("--tls-port", type=int, default=default,
                   help="also listen with TLS on this port (env FLEETFLOW_BROKER_TLS_PORT)")
    p.add_argument("--certfile", type=Path, default=default,
                   help="PEM certificate for the TLS listener")
    p.add_argument("--keyfile", type=Path, default=default,
                   help="PEM private key for the TLS listener")


def register(sub: Any) -> None:
    """Add the `broker` subcommand and its `passwd` and `mosquitto-config` subcommands."""
    p = sub.add_parser(
        "broker",
        help="run the embedded MQTT broker (amqtt) with users and topic ACLs",
        description="Run the embedded MQTT 3.1.1 broker with Fleetflow's users and topic ACL, "
        "manage its users, or write an equivalent Mosquitto configuration.",
    )
    p.add_argument("--host", default=os.environ.get("FLEETFLOW_BROKER_HOST", "127.0.0.1"),
                   help="address to listen on (env FLEETFLOW_BROKER_HOST; default 127.0.0.1)")
    _listener_flags(p, None)
    _passwd_flag(p, Path(os.environ.get("FLEETFLOW_BROKER_PASSWD") or data_root() / "passwd"))
    p.add_argument("--allow-anonymous-dev", action="store_true",
                   help="DEVELOPMENT ONLY: admit clients without user name, with full access")
    add_log_level(p, "warning", "; info logs every refused connection and denied topic")
    p.set_defaults(handler=_run)
    bsub = p.add_subparsers(dest="broker_command", metavar="SUBCOMMAND")

    pw = bsub.add_parser("passwd", help="add, remove or list broker users")
    pwsub = pw.add_subparsers(dest="passwd_command", metavar="ACTION", required=True)
    add = pwsub.add_parser("add", help="add a user (or change its password and role)")
    add.add_argument("name", help="user name; for role agent, the agent id")
    add.add_argument("--role", required=True, choices=("agent", "edge", "hub", "admin", "agv"))
    add.add_argument("--facility", help="facility of an agent or an edge")
    add.add_argument("--manufacturer", help="VDA 5050 manufacturer of an agv")
    add.add_argument("--serial", help="VDA 5050 serial number of an agv")
    add.add_argument("--password", help="the password (default: prompt, or one line of stdin)")
    add.add_argument("--iterations", type=int, default=None,
                     help="PBKDF2 rounds (default 1000)")
    _passwd_flag(add, argparse.SUPPRESS)
    add.set_defaults(handler=_passwd_add)
    rm = pwsub.add_parser("remove", help="remove a user")
    rm.add_argument("name")
    _passwd_flag(rm, argparse.SUPPRESS)
    rm.set_defaults(handler=_passwd_remove)
    ls = pwsub.add_parser("list", help="list users and roles")
    _passwd_flag(ls, argparse.SUPPRESS)
    ls.set_defaults(handler=_passwd_list)

    mc = bsub.add_parser("mosquitto-config",
                         help="write mosquitto.conf, passwd and acl for Mosquitto 2.x")
    mc.add_argument("directory", type=Path, metavar="DIR")
    _passwd_flag(mc, argparse.SUPPRESS)
    _listener_flags(mc, argparse.SUPPRESS)
    mc.add_argument("--listen", default="0.0.0.0", metavar="ADDR",
                    help="address Mosquitto listens on (default 0.0.0.0)")
    mc.add_argument("--bridge-to", metavar="HOST:PORT", help="cloud broker to bridge to")
    mc.add_argument("--facility", action="append",
                    help="facility whose edge topics the bridge carries (repeatable: one "
                         "broker carrying several facilities gets one bridge each)")
    mc.add_argument("--bridge-user", action="append",
                    help="user on the cloud broker (role edge there; one per --facility, "
                         "in the same order)")
    mc.add_argument("--bridge-password", action="append",
                    help="its password (one per --bridge-user)")
    mc.add_argument("--no-bridge", action="store_true",
                    help="drop the bridge of a config already in DIR (without --bridge-to, "
                         "it is kept)")
    mc.set_defaults(handler=_mosquitto_config)


def _settings(args: argparse.Namespace) -> Any:
    from broker import BrokerSettings

    port = args.port if args.port is not None else _env_int("FLEETFLOW_BROKER_PORT", 1883)
    tls_port = args.tls_port if args.tls_port is not None else _env_int(
        "FLEETFLOW_BROKER_TLS_PORT", None)
    if tls_port is not None and (args.certfile is None or args.keyfile is None):
        raise CliError("--tls-port needs --certfile and --keyfile")
    for f in (args.certfile, args.keyfile):
        if tls_port is not None and not f.is_file():
            raise CliError(f"{f} does not exist")
    return BrokerSettings(
        host=args.host, port=port or 1883, passwd=args.passwd,
        allow_anonymous_dev=args.allow_anonymous_dev, tls_port=tls_port,
        certfile=args.certfile, keyfile=args.keyfile,
    )


def _run(args: argparse.Namespace) -> int:
    from broker import PasswdError, PasswordFile, PortInUseError, run_broker

    settings = _settings(args)
    if not settings.passwd.exists() and not settings.allow_anonymous_dev:
        raise CliError(
            f"no user file at {settings.passwd}; add users with `fleetflow broker passwd add "
            "NAME --role ...` (or use --allow-anonymous-dev for development)"
        )
    try:
        PasswordFile(settings.passwd).users()
    except PasswdError as exc:
        raise CliError(str(exc)) from None
    _check_ports(settings)
    if settings.allow_anonymous_dev:
        print(_ANON_WARNING, file=sys.stderr, flush=True)
    try:
        return run_broker(settings, log_level=args.log_level.lower())
    except PortInUseError as exc:
        env = "FLEETFLOW_BROKER_TLS_PORT" if exc.flag == "--tls-port" else "FLEETFLOW_BROKER_PORT"
        raise port_in_use(exc.flag, exc.port, exc.host, env=env) from None
    except OSError as exc:
        raise CliError(f"cannot listen on {settings.host}: {exc.strerror or exc}") from None


def _check_ports(settings: Any) -> None:
    """A taken port as one line, before anything else is printed (the broker checks again
    when it binds, for a port taken in between)."""
    from fleetflow._up_parts import port_free

    for flag, port, env in (("--port", settings.port, "FLEETFLOW_BROKER_PORT"),
                            ("--tls-port", settings.tls_port, "FLEETFLOW_BROKER_TLS_PORT")):
        if port and not port_free(settings.host, port):
            raise port_in_use(flag, port, settings.host, env=env)


def _read_password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Again: ") != first:
        raise CliError("the two passwords differ")
    return first


def _passwd_add(args: argparse.Namespace) -> int:
    from broker import DEFAULT_ITERATIONS, Identity, PasswdError, PasswordFile
    from topics import ProtocolError

    try:
        identity = Identity(args.name, args.role, facility=args.facility,
                            manufacturer=args.manufacturer, serial=args.serial)
        password = _read_password(args)
        PasswordFile(args.passwd).add(identity, password,
                                      iterations=args.iterations or DEFAULT_ITERATIONS)
    except (ProtocolError, PasswdError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"{args.passwd}: user {args.name} ({args.role}) saved")
    return 0


def _passwd_remove(args: argparse.Namespace) -> int:
    from broker import PasswdError, PasswordFile

    try:
        PasswordFile(args.passwd).remove(args.name)
    except PasswdError as exc:
        raise CliError(str(exc)) from None
    print(f"{args.passwd}: user {args.name} removed")
    return 0


def _passwd_list(args: argparse.Namespace) -> int:
    from broker import PasswdError, PasswordFile

    try:
        users = PasswordFile(args.passwd).users()
    except PasswdError as exc:
        raise CliError(str(exc)) from None
    for u in users:
        i = u.identity
        scope = (f"facility={i.facility}" if i.facility else
                 f"manufacturer={i.manufacturer} serial={i.serial}" if i.manufacturer else "")
        print(f"{i.name}\t{i.role}\t{scope}".rstrip())
    return 0


def _mosquitto_config(args: argparse.Namespace) -> int:
    from broker import Bridge, PasswdError, PasswordFile, existing_bridge, write_mosquitto_config
    from topics import ProtocolError

    settings = _settings(args)
    bridge: list[Any] | None = None
    if args.bridge_to is not None:
        host, _, port = args.bridge_to.rpartition(":")
        if not host or not port.isdigit():
            raise CliError(f"--bridge-to {args.bridge_to!r} is not HOST:PORT")
        missing = [f for f, v in (("--facility", args.facility), ("--bridge-user",
                   args.bridge_user), ("--bridge-password", args.bridge_password)) if not v]
        if missing:
            raise CliError(f"--bridge-to needs {' and '.join(missing)}")
        if not len(args.facility) == len(args.bridge_user) == len(args.bridge_password):
            raise CliError("--bridge-to needs one --bridge-user and one --bridge-password "
                           "per --facility")
        bridge = [Bridge(host, int(port), f, u, pw) for f, u, pw in
                  zip(args.facility, args.bridge_user, args.bridge_password, strict=True)]
    elif args.facility or args.bridge_user or args.bridge_password:
        raise CliError("--facility, --bridge-user and --bridge-password go with --bridge-to")
    if bridge is not None and args.no_bridge:
        raise CliError("--no-bridge and --bridge-to exclude each other")
    kept = None if bridge is not None or args.no_bridge else existing_bridge(args.directory)
    if not settings.passwd.exists():
        raise CliError(f"no user file at {settings.passwd}; add users with "
                       "`fleetflow broker passwd add`")
    try:
        conf = write_mosquitto_config(
            args.directory, PasswordFile(settings.passwd), host=args.listen,
            port=settings.port, tls_port=settings.tls_port, certfile=settings.certfile,
            keyfile=settings.keyfile, bridge=bridge, keep_bridge=not args.no_bridge,
        )
    except (PasswdError, ProtocolError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if kept is not None:
        address = next((ln.split()[1] for ln in kept.splitlines() if ln.startswith("address ")),
                       "?")
        print(f"kept the bridge to {address} already in {conf} (drop it with --no-bridge)")
    print(f"wrote {conf} (run: mosquitto -c {conf})")
    return 0
