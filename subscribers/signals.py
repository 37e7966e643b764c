"""The documented signals through which upper apps hear of shoppers.

`subscribers` imports no other app: when something happens to a shopper it sends
one of these, always *after* the transaction that stored it has committed.
Receivers (connected in their AppConfig.ready) must only enqueue work.

event_recorded(sender, event_id, subscriber_id, name)
    An Event row was stored (a repeated event_id sends nothing). Cart
    abandonment and orders arrive as events too (cart_abandoned, order_placed).
consent_changed(sender, subscriber_id, channel, granted)
    A consent was granted or revoked.
subscribers_merged(sender, source_id, target_id)
    An anonymous profile was merged into a known one; source_id no longer exists.
subscriber_erased(sender, subscriber_id)
    A subscriber and everything about them was deleted (GDPR erasure).
"""
from django.dispatch import Signal

event_recorded = Signal()
consent_changed = Signal()
subscribers_merged = Signal()
subscriber_erased = Signal()
