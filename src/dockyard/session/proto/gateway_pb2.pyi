from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class APICap(_message.Message):
    __slots__ = ("ID", "Enabled", "Deprecated", "DisabledReason", "DisabledReasonMsg", "DisabledAlternative")
    ID_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    DEPRECATED_FIELD_NUMBER: _ClassVar[int]
    DISABLEDREASON_FIELD_NUMBER: _ClassVar[int]
    DISABLEDREASONMSG_FIELD_NUMBER: _ClassVar[int]
    DISABLEDALTERNATIVE_FIELD_NUMBER: _ClassVar[int]
    ID: str
    Enabled: bool
    Deprecated: bool
    DisabledReason: str
    DisabledReasonMsg: str
    DisabledAlternative: str
    def __init__(self, ID: _Optional[str] = ..., Enabled: _Optional[bool] = ..., Deprecated: _Optional[bool] = ..., DisabledReason: _Optional[str] = ..., DisabledReasonMsg: _Optional[str] = ..., DisabledAlternative: _Optional[str] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PongResponse(_message.Message):
    __slots__ = ("FrontendAPICaps", "LLBCaps")
    FRONTENDAPICAPS_FIELD_NUMBER: _ClassVar[int]
    LLBCAPS_FIELD_NUMBER: _ClassVar[int]
    FrontendAPICaps: _containers.RepeatedCompositeFieldContainer[APICap]
    LLBCaps: _containers.RepeatedCompositeFieldContainer[APICap]
    def __init__(self, FrontendAPICaps: _Optional[_Iterable[_Union[APICap, _Mapping]]] = ..., LLBCaps: _Optional[_Iterable[_Union[APICap, _Mapping]]] = ...) -> None: ...

class Definition(_message.Message):
    __slots__ = ()
    DEF_FIELD_NUMBER: _ClassVar[int]
    def __init__(self, **kwargs) -> None: ...

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

class SolveRequest(_message.Message):
    __slots__ = ("Definition", "Frontend", "FrontendOpt", "allowResultReturn", "allowResultArrayRef", "Final", "ExporterAttr", "CacheImports", "FrontendInputs", "Evaluate")
    class FrontendOptEntry(_message.Message):
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
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    FRONTEND_FIELD_NUMBER: _ClassVar[int]
    FRONTENDOPT_FIELD_NUMBER: _ClassVar[int]
    ALLOWRESULTRETURN_FIELD_NUMBER: _ClassVar[int]
    ALLOWRESULTARRAYREF_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    EXPORTERATTR_FIELD_NUMBER: _ClassVar[int]
    CACHEIMPORTS_FIELD_NUMBER: _ClassVar[int]
    FRONTENDINPUTS_FIELD_NUMBER: _ClassVar[int]
    EVALUATE_FIELD_NUMBER: _ClassVar[int]
    Definition: Definition
    Frontend: str
    FrontendOpt: _containers.ScalarMap[str, str]
    allowResultReturn: bool
    allowResultArrayRef: bool
    Final: bool
    ExporterAttr: bytes
    CacheImports: _containers.RepeatedCompositeFieldContainer[CacheOptionsEntry]
    FrontendInputs: _containers.MessageMap[str, Definition]
    Evaluate: bool
    def __init__(self, Definition: _Optional[_Union[Definition, _Mapping]] = ..., Frontend: _Optional[str] = ..., FrontendOpt: _Optional[_Mapping[str, str]] = ..., allowResultReturn: _Optional[bool] = ..., allowResultArrayRef: _Optional[bool] = ..., Final: _Optional[bool] = ..., ExporterAttr: _Optional[bytes] = ..., CacheImports: _Optional[_Iterable[_Union[CacheOptionsEntry, _Mapping]]] = ..., FrontendInputs: _Optional[_Mapping[str, Definition]] = ..., Evaluate: _Optional[bool] = ...) -> None: ...

class Ref(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    DEF_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ..., **kwargs) -> None: ...

class RefMap(_message.Message):
    __slots__ = ("refs",)
    class RefsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Ref
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Ref, _Mapping]] = ...) -> None: ...
    REFS_FIELD_NUMBER: _ClassVar[int]
    refs: _containers.MessageMap[str, Ref]
    def __init__(self, refs: _Optional[_Mapping[str, Ref]] = ...) -> None: ...

class RefMapDeprecated(_message.Message):
    __slots__ = ("refs",)
    class RefsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REFS_FIELD_NUMBER: _ClassVar[int]
    refs: _containers.ScalarMap[str, str]
    def __init__(self, refs: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("refDeprecated", "refsDeprecated", "ref", "refs", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    REFDEPRECATED_FIELD_NUMBER: _ClassVar[int]
    REFSDEPRECATED_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    REFS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    refDeprecated: str
    refsDeprecated: RefMapDeprecated
    ref: Ref
    refs: RefMap
    metadata: _containers.ScalarMap[str, bytes]
    def __init__(self, refDeprecated: _Optional[str] = ..., refsDeprecated: _Optional[_Union[RefMapDeprecated, _Mapping]] = ..., ref: _Optional[_Union[Ref, _Mapping]] = ..., refs: _Optional[_Union[RefMap, _Mapping]] = ..., metadata: _Optional[_Mapping[str, bytes]] = ...) -> None: ...

class SolveResponse(_message.Message):
    __slots__ = ("ref", "result")
    REF_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ref: str
    result: Result
    def __init__(self, ref: _Optional[str] = ..., result: _Optional[_Union[Result, _Mapping]] = ...) -> None: ...

class RpcStatus(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ReturnRequest(_message.Message):
    __slots__ = ("result", "error")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    result: Result
    error: RpcStatus
    def __init__(self, result: _Optional[_Union[Result, _Mapping]] = ..., error: _Optional[_Union[RpcStatus, _Mapping]] = ...) -> None: ...

class ReturnResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InputsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InputsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("Ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    Ref: str
    def __init__(self, Ref: _Optional[str] = ...) -> None: ...

class EvaluateResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReadFileRequest(_message.Message):
    __slots__ = ("Ref", "FilePath")
    REF_FIELD_NUMBER: _ClassVar[int]
    FILEPATH_FIELD_NUMBER: _ClassVar[int]
    Ref: str
    FilePath: str
    def __init__(self, Ref: _Optional[str] = ..., FilePath: _Optional[str] = ...) -> None: ...

class ReadFileResponse(_message.Message):
    __slots__ = ("Data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    Data: bytes
    def __init__(self, Data: _Optional[bytes] = ...) -> None: ...

class WarnRequest(_message.Message):
    __slots__ = ("digest", "level", "short", "detail", "url")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    SHORT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    digest: str
    level: int
    short: bytes
    detail: _containers.RepeatedScalarFieldContainer[bytes]
    url: str
    def __init__(self, digest: _Optional[str] = ..., level: _Optional[int] = ..., short: _Optional[bytes] = ..., detail: _Optional[_Iterable[bytes]] = ..., url: _Optional[str] = ...) -> None: ...

class WarnResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
