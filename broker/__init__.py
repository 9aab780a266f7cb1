"""Embedded MQTT broker (amqtt) with Fleetflow's users and topic ACL; Mosquitto config and
the one Mosquitto launcher (``mosquitto``) that tests and benchmarks use."""

from broker._acl import (
    ROLES,
    Access,
    Action,
    Identity,
    Role,
    Rule,
    allowed,
    filter_covers,
    rules,
    topic_matches,
)
from broker._amqtt_version import AMQTT_VERSION, check_amqtt_version
from broker._mosquitto import Bridge, existing_bridge, mosquitto_acl, write_mosquitto_config
from broker._mosquitto_process import MOSQUITTO_PATH, find_mosquitto, mosquitto
from broker._passwd import (
    DEFAULT_ITERATIONS,
    PasswdError,
    PasswordFile,
    User,
    hash_password,
    verify_password,
)
from broker._private_file import locked_file, write_private
from broker._process import (
    BrokerProcess,
    BrokerStartError,
    die_with_parent,
    free_port,
    mqtt_ready,
    stop_process,
)
from broker._server import BrokerSettings, PortInUseError, amqtt_config, run_broker, serve

__all__ = [
    "AMQTT_VERSION",
    "DEFAULT_ITERATIONS",
    "MOSQUITTO_PATH",
    "ROLES",
    "Access",
    "Action",
    "Bridge",
    "BrokerProcess",
    "BrokerSettings",
    "BrokerStartError",
    "Identity",
    "PasswdError",
    "PasswordFile",
    "PortInUseError",
    "Role",
    "Rule",
    "User",
    "allowed",
    "amqtt_config",
    "check_amqtt_version",
    "die_with_parent",
    "existing_bridge",
    "filter_covers",
    "find_mosquitto",
    "free_port",
    "hash_password",
    "locked_file",
    "mosquitto",
    "mosquitto_acl",
    "mqtt_ready",
    "rules",
    "run_broker",
    "serve",
    "stop_process",
    "topic_matches",
    "verify_password",
    "write_mosquitto_config",
    "write_private",
]
