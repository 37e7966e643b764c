"""Channels: one small module per provider behind one interface (base.ChannelBackend).

Which backend serves a channel is a setting (DELIVERY_BACKENDS, from the
environment), like Django's EMAIL_BACKEND: real providers when their
credentials are set, the sandbox otherwise. See docs/channels.md.
"""
from functools import lru_cache

from django.conf import settings
from django.utils.module_loading import import_string


@lru_cache(maxsize=None)
def _backend_for(channel, dotted_path):
    return import_string(dotted_path)()


def get_backend(channel):
    """The configured backend instance for `channel` (cached per process)."""
    return _backend_for(channel, settings.DELIVERY_BACKENDS[channel])


def reset_backends():
    """Forget cached backends (tests that change DELIVERY_BACKENDS or credentials call this)."""
    _backend_for.cache_clear()
