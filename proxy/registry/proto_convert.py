"""Conversions between the registry model and ``protos.registry_pb2`` messages."""

from __future__ import annotations

from protos import registry_pb2 as pb
from proxy.registry.model import (
    DEFAULT_WEIGHT,
    MAIN_ENV,
    Lanes,
    Provider,
    ServiceKey,
    metadata_of,
    normalize_env,
)


def key_to_pb(key: ServiceKey) -> pb.ServiceKey:
    return pb.ServiceKey(interface=key.interface, version=key.version, group=key.group)


def key_from_pb(msg: pb.ServiceKey) -> ServiceKey:
    """Normalised key; raises ``InvalidRegistration`` on an empty / invalid interface."""
    return ServiceKey.of(msg.interface, msg.version, msg.group)


def provider_to_pb(provider: Provider) -> pb.Provider:
    return pb.Provider(
        address=provider.address,
        protocol=provider.protocol,
        env=provider.env,
        weight=provider.weight,
        methods=provider.methods,
        application=provider.application,
        source=provider.source,
        metadata=dict(provider.metadata),
    )


def provider_from_pb(msg: pb.Provider, *, source: str | None = None) -> Provider:
    """A validated Provider; ``source`` overrides the message's (the server stamps its own).

    An empty protocol means ``dubbo``, weight 0 the default, env ``""`` means ``main``.
    Raises ``InvalidRegistration``.
    """
    return Provider(
        address=msg.address,
        protocol=msg.protocol or "dubbo",
        env=normalize_env(msg.env) if msg.env else MAIN_ENV,
        weight=msg.weight or DEFAULT_WEIGHT,
        methods=tuple(msg.methods),
        application=msg.application,
        source=source if source is not None else (msg.source or "registry"),
        metadata=metadata_of(msg.metadata),
    )


def registration_pb(key: ServiceKey, provider: Provider) -> pb.Registration:
    return pb.Registration(service=key_to_pb(key), provider=provider_to_pb(provider))


def provider_list_pb(
    key: ServiceKey, lanes: Lanes, *, stale: bool, revision: int
) -> pb.ProviderList:
    """The full list of one service, lanes flattened in env order."""
    return pb.ProviderList(
        service=key_to_pb(key),
        providers=[provider_to_pb(p) for ps in lanes.values() for p in ps],
        stale=stale,
        revision=revision,
    )
