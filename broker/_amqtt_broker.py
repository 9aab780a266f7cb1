"""``FleetflowBroker``: amqtt 0.12's broker with three of its defects fixed on our side.

Written for, and checked against, amqtt 0.12.1 (``check_amqtt_version`` refuses others;
the overridden methods are copies of that release's, changed only where marked ``FIX``).
docs/broker.md describes each defect precisely, for reporting upstream:

1. ``_run_broadcast`` iterates ``self._subscriptions`` (a dict of filter -> list of
   sessions) across ``await``s. A client that subscribes meanwhile adds a key: the loop dies
   with ``RuntimeError: dictionary changed size during iteration`` and the message is lost
   for every filter not yet visited ("Task exception was never retrieved"). A client that
   disconnects meanwhile pops from a list being iterated, so the next subscriber is skipped.
   FIX: iterate over snapshots of both.
2. ``_handle_client_session`` sends every client, on every connect, the retained messages
   of *every* filter any client has subscribed to (``for topic in self._subscriptions``),
   matching or not the client's own subscriptions — across ``await``s, so it also dies of
   (1)'s ``RuntimeError``, which drops the connecting client before its message loop starts
   (it stays connected, but its SUBSCRIBEs and PUBLISHes are never handled: deaf).
   MQTT 3.1.1 [MQTT-3.3.1-6] sends retained messages when a subscription is made, which a
   resumed session does not do. FIX: the loop is gone.
3. A PUBLISH from a client is delivered at the *subscription's* QoS, even above the
   publisher's: a QoS 0 state message costs a QoS 1 handshake to every subscriber.
   [MQTT-3.8.4-6] says min(publish, subscription). FIX: the publisher's QoS travels with
   the broadcast and caps the delivery QoS.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from amqtt.broker import Broker, BrokerProtocolHandler, Server
from amqtt.contexts import Action
from amqtt.errors import BrokerError
from amqtt.events import BrokerEvents
from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.session import OutgoingApplicationMessage, Session
from amqtt.utils import format_client_message
from transitions import MachineError

__all__ = ["FleetflowBroker"]

# The QoS of the PUBLISH being handled by the current client task (defect 3).
_publish_qos: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "fleetflow_publish_qos", default=None)


class FleetflowBroker(Broker):  # type: ignore[misc]  # amqtt is untyped here
    """amqtt's ``Broker`` with the defects above fixed."""

    async def _handle_client_session(
        self, reader: Any, writer: Any, client_session: Session,
        handler: BrokerProtocolHandler, server: Server, listener_name: str,
    ) -> None:
        authenticated = await self._authenticate(
            client_session, self.listeners_config[listener_name])

        if client_session.client_id is None:
            msg = "Client ID was not correctly created/set."
            raise BrokerError(msg)

        while True:
            try:
                client_session.transitions.connect()
                break
            except (MachineError, ValueError):
                if client_session.transitions.is_connected():
                    self.logger.warning(f"Client {client_session.client_id} is already "
                                        "connected, performing take-over.")
                    old_session = self._sessions[client_session.client_id]
                    await old_session[1].handle_connection_closed()
                    await old_session[1].stop()
                    break
                self.logger.warning(f"Client {client_session.client_id} is reconnecting "
                                    "too quickly, make it wait")
                await asyncio.sleep(1)

        handler.attach(client_session, reader, writer)
        self._sessions[client_session.client_id] = (client_session, handler)

        await handler.mqtt_connack_authorize(authenticated)

        if not authenticated:
            await writer.close()
            return

        await self.plugins_manager.fire_event(BrokerEvents.CLIENT_CONNECTED,
                                              client_id=client_session.client_id,
                                              client_session=client_session)

        await handler.start()

        # publish messages that were retained because the client session was disconnected
        await self._publish_session_retained_messages(client_session)

        # FIX (defect 2): no "retained messages of every filter" here; see the module doc.
        await self._client_message_loop(client_session, handler)

    async def _handle_message_delivery(
        self, client_session: Session, handler: BrokerProtocolHandler,
        wait_deliver: asyncio.Future[Any],
    ) -> bool:
        # FIX (defect 3): remember the publisher's QoS for ``_broadcast_message`` (this runs
        # in the publishing client's own task, so the context variable is that task's).
        app_message = wait_deliver.result()
        token = _publish_qos.set(None if app_message is None else app_message.qos)
        try:
            delivered: bool = await super()._handle_message_delivery(
                client_session, handler, wait_deliver)
            return delivered
        finally:
            _publish_qos.reset(token)

    async def _broadcast_message(
        self, session: Session | None, topic: str | None, data: bytes | bytearray | None,
        force_qos: int | None = None,
    ) -> None:
        broadcast: dict[str, Any] = {"session": session, "topic": topic, "data": data}
        if force_qos is not None:
            broadcast["qos"] = force_qos
        elif (publish_qos := _publish_qos.get()) is not None:
            broadcast["max_qos"] = publish_qos  # FIX (defect 3)
        await self._broadcast_queue.put(broadcast)  # type: ignore[arg-type]

    async def _run_broadcast(
        self, running_tasks: Any,
    ) -> None:
        broadcast = await self._broadcast_queue.get()
        max_qos = broadcast.get("max_qos")  # type: ignore[misc]

        # FIX (defect 1): snapshots; other clients (un)subscribe during the awaits below.
        for k_filter, subscriptions in list(self._subscriptions.items()):

            if not self._matches(broadcast["topic"], k_filter):
                continue

            for target_session, sub_qos in list(subscriptions):
                qos = broadcast.get("qos", sub_qos)
                if max_qos is not None and qos > max_qos:
                    qos = max_qos  # FIX (defect 3)

                sendable = await self._topic_filtering(
                    target_session, topic=broadcast["topic"], action=Action.RECEIVE)
                if not sendable:
                    self.logger.info(f"{target_session.client_id} not allowed to receive "
                                     f"messages from TOPIC {broadcast['topic']}.")
                    continue

                # Keep what cannot be sent to a disconnected persistent session (QoS 1/2,
                # not anonymous) [MQTT 3.1.2.4]
                if (target_session.transitions.state != "connected"
                        and not target_session.clean_session
                        and qos in (QOS_1, QOS_2)
                        and not target_session.is_anonymous):
                    await self._retain_broadcast_message(
                        broadcast, qos, target_session)  # type: ignore[arg-type]
                    continue

                # Only broadcast the message to connected clients
                if target_session.transitions.state != "connected":
                    continue

                if self.logger.isEnabledFor(10):
                    self.logger.debug(
                        f"Broadcasting from {format_client_message(session=broadcast['session'])}"
                        f" on '{broadcast['topic']}' to "
                        f"{format_client_message(session=target_session)}",
                    )

                handler = self._get_handler(target_session)
                if handler:
                    task: asyncio.Task[OutgoingApplicationMessage] = asyncio.ensure_future(
                        handler.mqtt_publish(
                            broadcast["topic"],
                            broadcast["data"],
                            qos,
                            retain=False,
                        ),
                    )
                    running_tasks.append(task)
