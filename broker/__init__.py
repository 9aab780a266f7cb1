"""Embedded MQTT broker (amqtt) with Fleetflow's users and topic ACL; Mosquitto config."""

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
from broker._mosquitto import Bridge, mosquitto_acl, write_mosquitto_config
from broker._passwd import (
    DEFAULT_ITERATIONS,
    PasswdError,
    PasswordFile,
    User,
    hash_password,
    verify_password,
)
from broker._process import BrokerProcess, BrokerStartError, die_with_parent, mqtt_ready
from broker._server import BrokerSettings, PortInUseError, amqtt_config, run_broker, serve

__all__ = [
    "DEFAULT_ITERATIONS",
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
    "die_with_parent",
    "filter_covers",
    "hash_password",
    "mosquitto_acl",
    "mqtt_ready",
    "rules",
    "run_broker",
    "serve",
    "topic_matches",
    "verify_password",
    "write_mosquitto_config",
]
