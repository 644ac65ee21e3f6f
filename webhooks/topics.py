"""The topic catalogue, with the rule that the ReadyFor family is never sent for EMS."""

from __future__ import annotations

from typing import Final

SUBSCRIPTION_TOPICS: Final = (
    "subscriptionCreated",
    "subscriptionUpdated",
    "subscriptionCancelled",
    "subscriptionActivated",
    "subscriptionRenewed",
    "subscriptionTerminated",
    "subscriptionTransferred",
    "subscriptionRevived",
    "subscriptionSwitchRequested",
    "subscriptionSwitched",
    "subscriptionSwitchCancelled",
)
PAYMENT_TOPICS: Final = ("transactionCreated", "paymentUpdated")
EMITTED: Final = SUBSCRIPTION_TOPICS + PAYMENT_TOPICS

# Cleeng raises these for subscriptions it bills itself. An externally-managed subscription is
# billed by its store, so they may be subscribed to but are never sent: the service records a
# `webhookSuppressed` operation where one would have been raised.
READY_FOR: Final = (
    "subscriptionReadyForPaymentAuthorisation",
    "subscriptionReadyForPaymentCapture",
    "subscriptionReadyForTermination",
)
# Sent by a resync to one endpoint, whatever its topics.
SNAPSHOT: Final = "subscriptionSnapshot"

SUBSCRIBABLE: Final = EMITTED + READY_FOR


def is_sent(topic: str) -> bool:
    """Whether events of `topic` are ever delivered (the ReadyFor family never is)."""
    return topic in EMITTED or topic == SNAPSHOT
