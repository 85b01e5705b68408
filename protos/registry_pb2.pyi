from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServiceKey(_message.Message):
    __slots__ = ("interface", "version", "group")
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    interface: str
    version: str
    group: str
    def __init__(self, interface: _Optional[str] = ..., version: _Optional[str] = ..., group: _Optional[str] = ...) -> None: ...

class Provider(_message.Message):
    __slots__ = ("address", "protocol", "env", "weight", "methods", "application", "source", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    address: str
    protocol: str
    env: str
    weight: int
    methods: _containers.RepeatedScalarFieldContainer[str]
    application: str
    source: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, address: _Optional[str] = ..., protocol: _Optional[str] = ..., env: _Optional[str] = ..., weight: _Optional[int] = ..., methods: _Optional[_Iterable[str]] = ..., application: _Optional[str] = ..., source: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Registration(_message.Message):
    __slots__ = ("service", "provider")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    service: ServiceKey
    provider: Provider
    def __init__(self, service: _Optional[_Union[ServiceKey, _Mapping]] = ..., provider: _Optional[_Union[Provider, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class Registrations(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Registration]
    def __init__(self, items: _Optional[_Iterable[_Union[Registration, _Mapping]]] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("register", "unregister", "heartbeat", "request_id")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    UNREGISTER_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    register: Registrations
    unregister: Registrations
    heartbeat: Heartbeat
    request_id: int
    def __init__(self, register: _Optional[_Union[Registrations, _Mapping]] = ..., unregister: _Optional[_Union[Registrations, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., request_id: _Optional[int] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("heartbeat_interval_ms", "lease_ms")
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval_ms: int
    lease_ms: int
    def __init__(self, heartbeat_interval_ms: _Optional[int] = ..., lease_ms: _Optional[int] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("index", "error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    error: str
    def __init__(self, index: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("request_id", "applied", "errors")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    applied: int
    errors: _containers.RepeatedCompositeFieldContainer[ItemError]
    def __init__(self, request_id: _Optional[int] = ..., applied: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[ItemError, _Mapping]]] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ("welcome", "ack", "heartbeat")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    ack: Ack
    heartbeat: Heartbeat
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: ServiceKey
    def __init__(self, service: _Optional[_Union[ServiceKey, _Mapping]] = ...) -> None: ...

class ProviderList(_message.Message):
    __slots__ = ("service", "providers", "stale", "revision")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    service: ServiceKey
    providers: _containers.RepeatedCompositeFieldContainer[Provider]
    stale: bool
    revision: int
    def __init__(self, service: _Optional[_Union[ServiceKey, _Mapping]] = ..., providers: _Optional[_Iterable[_Union[Provider, _Mapping]]] = ..., stale: _Optional[bool] = ..., revision: _Optional[int] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("interface", "env")
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    interface: str
    env: str
    def __init__(self, interface: _Optional[str] = ..., env: _Optional[str] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("services",)
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[ProviderList]
    def __init__(self, services: _Optional[_Iterable[_Union[ProviderList, _Mapping]]] = ...) -> None: ...
