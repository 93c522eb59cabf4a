import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PruneRequest(_message.Message):
    __slots__ = ("filter", "all", "keepDuration", "keepBytes")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    KEEPDURATION_FIELD_NUMBER: _ClassVar[int]
    KEEPBYTES_FIELD_NUMBER: _ClassVar[int]
    filter: _containers.RepeatedScalarFieldContainer[str]
    all: bool
    keepDuration: int
    keepBytes: int
    def __init__(self, filter: _Optional[_Iterable[str]] = ..., all: _Optional[bool] = ..., keepDuration: _Optional[int] = ..., keepBytes: _Optional[int] = ...) -> None: ...

class DiskUsageRequest(_message.Message):
    __slots__ = ("filter",)
    FILTER_FIELD_NUMBER: _ClassVar[int]
    filter: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, filter: _Optional[_Iterable[str]] = ...) -> None: ...

class DiskUsageResponse(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: _containers.RepeatedCompositeFieldContainer[UsageRecord]
    def __init__(self, record: _Optional[_Iterable[_Union[UsageRecord, _Mapping]]] = ...) -> None: ...

class UsageRecord(_message.Message):
    __slots__ = ("ID", "Mutable", "InUse", "Size", "Parent", "CreatedAt", "LastUsedAt", "UsageCount", "Description", "RecordType", "Shared", "Parents")
    ID_FIELD_NUMBER: _ClassVar[int]
    MUTABLE_FIELD_NUMBER: _ClassVar[int]
    INUSE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    CREATEDAT_FIELD_NUMBER: _ClassVar[int]
    LASTUSEDAT_FIELD_NUMBER: _ClassVar[int]
    USAGECOUNT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    RECORDTYPE_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    PARENTS_FIELD_NUMBER: _ClassVar[int]
    ID: str
    Mutable: bool
    InUse: bool
    Size: int
    Parent: str
    CreatedAt: _timestamp_pb2.Timestamp
    LastUsedAt: _timestamp_pb2.Timestamp
    UsageCount: int
    Description: str
    RecordType: str
    Shared: bool
    Parents: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ID: _Optional[str] = ..., Mutable: _Optional[bool] = ..., InUse: _Optional[bool] = ..., Size: _Optional[int] = ..., Parent: _Optional[str] = ..., CreatedAt: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., LastUsedAt: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., UsageCount: _Optional[int] = ..., Description: _Optional[str] = ..., RecordType: _Optional[str] = ..., Shared: _Optional[bool] = ..., Parents: _Optional[_Iterable[str]] = ...) -> None: ...

class Definition(_message.Message):
    __slots__ = ()
    DEF_FIELD_NUMBER: _ClassVar[int]
    def __init__(self, **kwargs) -> None: ...

class Platform(_message.Message):
    __slots__ = ("Architecture", "OS", "Variant", "OSVersion", "OSFeatures")
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    OSVERSION_FIELD_NUMBER: _ClassVar[int]
    OSFEATURES_FIELD_NUMBER: _ClassVar[int]
    Architecture: str
    OS: str
    Variant: str
    OSVersion: str
    OSFeatures: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, Architecture: _Optional[str] = ..., OS: _Optional[str] = ..., Variant: _Optional[str] = ..., OSVersion: _Optional[str] = ..., OSFeatures: _Optional[_Iterable[str]] = ...) -> None: ...

class SolveRequest(_message.Message):
    __slots__ = ("Ref", "Definition", "ExporterDeprecated", "ExporterAttrsDeprecated", "Session", "Frontend", "FrontendAttrs", "Cache", "Entitlements", "FrontendInputs", "Internal", "SourcePolicy", "Exporters")
    class ExporterAttrsDeprecatedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class FrontendAttrsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class FrontendInputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Definition
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Definition, _Mapping]] = ...) -> None: ...
    REF_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    EXPORTERDEPRECATED_FIELD_NUMBER: _ClassVar[int]
    EXPORTERATTRSDEPRECATED_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    FRONTEND_FIELD_NUMBER: _ClassVar[int]
    FRONTENDATTRS_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    ENTITLEMENTS_FIELD_NUMBER: _ClassVar[int]
    FRONTENDINPUTS_FIELD_NUMBER: _ClassVar[int]
    INTERNAL_FIELD_NUMBER: _ClassVar[int]
    SOURCEPOLICY_FIELD_NUMBER: _ClassVar[int]
    EXPORTERS_FIELD_NUMBER: _ClassVar[int]
    Ref: str
    Definition: Definition
    ExporterDeprecated: str
    ExporterAttrsDeprecated: _containers.ScalarMap[str, str]
    Session: str
    Frontend: str
    FrontendAttrs: _containers.ScalarMap[str, str]
    Cache: CacheOptions
    Entitlements: _containers.RepeatedScalarFieldContainer[str]
    FrontendInputs: _containers.MessageMap[str, Definition]
    Internal: bool
    SourcePolicy: bytes
    Exporters: _containers.RepeatedCompositeFieldContainer[Exporter]
    def __init__(self, Ref: _Optional[str] = ..., Definition: _Optional[_Union[Definition, _Mapping]] = ..., ExporterDeprecated: _Optional[str] = ..., ExporterAttrsDeprecated: _Optional[_Mapping[str, str]] = ..., Session: _Optional[str] = ..., Frontend: _Optional[str] = ..., FrontendAttrs: _Optional[_Mapping[str, str]] = ..., Cache: _Optional[_Union[CacheOptions, _Mapping]] = ..., Entitlements: _Optional[_Iterable[str]] = ..., FrontendInputs: _Optional[_Mapping[str, Definition]] = ..., Internal: _Optional[bool] = ..., SourcePolicy: _Optional[bytes] = ..., Exporters: _Optional[_Iterable[_Union[Exporter, _Mapping]]] = ...) -> None: ...

class CacheOptions(_message.Message):
    __slots__ = ("ExportRefDeprecated", "ImportRefsDeprecated", "ExportAttrsDeprecated", "Exports", "Imports")
    class ExportAttrsDeprecatedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EXPORTREFDEPRECATED_FIELD_NUMBER: _ClassVar[int]
    IMPORTREFSDEPRECATED_FIELD_NUMBER: _ClassVar[int]
    EXPORTATTRSDEPRECATED_FIELD_NUMBER: _ClassVar[int]
    EXPORTS_FIELD_NUMBER: _ClassVar[int]
    IMPORTS_FIELD_NUMBER: _ClassVar[int]
    ExportRefDeprecated: str
    ImportRefsDeprecated: _containers.RepeatedScalarFieldContainer[str]
    ExportAttrsDeprecated: _containers.ScalarMap[str, str]
    Exports: _containers.RepeatedCompositeFieldContainer[CacheOptionsEntry]
    Imports: _containers.RepeatedCompositeFieldContainer[CacheOptionsEntry]
    def __init__(self, ExportRefDeprecated: _Optional[str] = ..., ImportRefsDeprecated: _Optional[_Iterable[str]] = ..., ExportAttrsDeprecated: _Optional[_Mapping[str, str]] = ..., Exports: _Optional[_Iterable[_Union[CacheOptionsEntry, _Mapping]]] = ..., Imports: _Optional[_Iterable[_Union[CacheOptionsEntry, _Mapping]]] = ...) -> None: ...

class CacheOptionsEntry(_message.Message):
    __slots__ = ("Type", "Attrs")
    class AttrsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTRS_FIELD_NUMBER: _ClassVar[int]
    Type: str
    Attrs: _containers.ScalarMap[str, str]
    def __init__(self, Type: _Optional[str] = ..., Attrs: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SolveResponse(_message.Message):
    __slots__ = ("ExporterResponse",)
    class ExporterResponseEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EXPORTERRESPONSE_FIELD_NUMBER: _ClassVar[int]
    ExporterResponse: _containers.ScalarMap[str, str]
    def __init__(self, ExporterResponse: _Optional[_Mapping[str, str]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("Ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    Ref: str
    def __init__(self, Ref: _Optional[str] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ("filter",)
    FILTER_FIELD_NUMBER: _ClassVar[int]
    filter: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, filter: _Optional[_Iterable[str]] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: _containers.RepeatedCompositeFieldContainer[WorkerRecord]
    def __init__(self, record: _Optional[_Iterable[_Union[WorkerRecord, _Mapping]]] = ...) -> None: ...

class WorkerRecord(_message.Message):
    __slots__ = ("ID", "Labels", "platforms", "GCPolicy", "BuildkitVersion")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PLATFORMS_FIELD_NUMBER: _ClassVar[int]
    GCPOLICY_FIELD_NUMBER: _ClassVar[int]
    BUILDKITVERSION_FIELD_NUMBER: _ClassVar[int]
    ID: str
    Labels: _containers.ScalarMap[str, str]
    platforms: _containers.RepeatedCompositeFieldContainer[Platform]
    GCPolicy: _containers.RepeatedCompositeFieldContainer[GCPolicy]
    BuildkitVersion: BuildkitVersion
    def __init__(self, ID: _Optional[str] = ..., Labels: _Optional[_Mapping[str, str]] = ..., platforms: _Optional[_Iterable[_Union[Platform, _Mapping]]] = ..., GCPolicy: _Optional[_Iterable[_Union[GCPolicy, _Mapping]]] = ..., BuildkitVersion: _Optional[_Union[BuildkitVersion, _Mapping]] = ...) -> None: ...

class GCPolicy(_message.Message):
    __slots__ = ("all", "keepDuration", "keepBytes", "filters")
    ALL_FIELD_NUMBER: _ClassVar[int]
    KEEPDURATION_FIELD_NUMBER: _ClassVar[int]
    KEEPBYTES_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    all: bool
    keepDuration: int
    keepBytes: int
    filters: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, all: _Optional[bool] = ..., keepDuration: _Optional[int] = ..., keepBytes: _Optional[int] = ..., filters: _Optional[_Iterable[str]] = ...) -> None: ...

class BuildkitVersion(_message.Message):
    __slots__ = ("package", "version", "revision")
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    package: str
    version: str
    revision: str
    def __init__(self, package: _Optional[str] = ..., version: _Optional[str] = ..., revision: _Optional[str] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("buildkitVersion",)
    BUILDKITVERSION_FIELD_NUMBER: _ClassVar[int]
    buildkitVersion: BuildkitVersion
    def __init__(self, buildkitVersion: _Optional[_Union[BuildkitVersion, _Mapping]] = ...) -> None: ...

class BuildHistoryRequest(_message.Message):
    __slots__ = ("ActiveOnly", "Ref", "EarlyExit")
    ACTIVEONLY_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    EARLYEXIT_FIELD_NUMBER: _ClassVar[int]
    ActiveOnly: bool
    Ref: str
    EarlyExit: bool
    def __init__(self, ActiveOnly: _Optional[bool] = ..., Ref: _Optional[str] = ..., EarlyExit: _Optional[bool] = ...) -> None: ...

class Exporter(_message.Message):
    __slots__ = ("Type", "Attrs")
    class AttrsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTRS_FIELD_NUMBER: _ClassVar[int]
    Type: str
    Attrs: _containers.ScalarMap[str, str]
    def __init__(self, Type: _Optional[str] = ..., Attrs: _Optional[_Mapping[str, str]] = ...) -> None: ...
