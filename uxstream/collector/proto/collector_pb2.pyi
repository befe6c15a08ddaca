from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATUS_UNSPECIFIED: _ClassVar[Status]
    ACCEPTED: _ClassVar[Status]
    REJECTED: _ClassVar[Status]
    SKIPPED: _ClassVar[Status]
STATUS_UNSPECIFIED: Status
ACCEPTED: Status
REJECTED: Status
SKIPPED: Status

class Event(_message.Message):
    __slots__ = ("event_id", "event_type", "event_name", "user_id", "anonymous_id", "ts", "page_url", "page_path", "page_title", "referrer", "utm_source", "utm_medium", "utm_campaign", "device_type", "os", "browser", "user_agent", "country", "app_version", "lcp_ms", "inp_ms", "cls", "error_type", "error_message", "page_load_ms", "session_hint", "engagement_time_ms", "consent", "screen_width", "screen_height", "properties", "survey_id", "feedback_scale", "feedback_score", "feedback_comment")
    class PropertiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    PAGE_URL_FIELD_NUMBER: _ClassVar[int]
    PAGE_PATH_FIELD_NUMBER: _ClassVar[int]
    PAGE_TITLE_FIELD_NUMBER: _ClassVar[int]
    REFERRER_FIELD_NUMBER: _ClassVar[int]
    UTM_SOURCE_FIELD_NUMBER: _ClassVar[int]
    UTM_MEDIUM_FIELD_NUMBER: _ClassVar[int]
    UTM_CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    BROWSER_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    APP_VERSION_FIELD_NUMBER: _ClassVar[int]
    LCP_MS_FIELD_NUMBER: _ClassVar[int]
    INP_MS_FIELD_NUMBER: _ClassVar[int]
    CLS_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_LOAD_MS_FIELD_NUMBER: _ClassVar[int]
    SESSION_HINT_FIELD_NUMBER: _ClassVar[int]
    ENGAGEMENT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    SCREEN_WIDTH_FIELD_NUMBER: _ClassVar[int]
    SCREEN_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    SURVEY_ID_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_SCALE_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_SCORE_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_COMMENT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    event_type: str
    event_name: str
    user_id: str
    anonymous_id: str
    ts: int
    page_url: str
    page_path: str
    page_title: str
    referrer: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    device_type: str
    os: str
    browser: str
    user_agent: str
    country: str
    app_version: str
    lcp_ms: float
    inp_ms: float
    cls: float
    error_type: str
    error_message: str
    page_load_ms: float
    session_hint: str
    engagement_time_ms: int
    consent: str
    screen_width: int
    screen_height: int
    properties: _containers.ScalarMap[str, str]
    survey_id: str
    feedback_scale: str
    feedback_score: int
    feedback_comment: str
    def __init__(self, event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., event_name: _Optional[str] = ..., user_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., ts: _Optional[int] = ..., page_url: _Optional[str] = ..., page_path: _Optional[str] = ..., page_title: _Optional[str] = ..., referrer: _Optional[str] = ..., utm_source: _Optional[str] = ..., utm_medium: _Optional[str] = ..., utm_campaign: _Optional[str] = ..., device_type: _Optional[str] = ..., os: _Optional[str] = ..., browser: _Optional[str] = ..., user_agent: _Optional[str] = ..., country: _Optional[str] = ..., app_version: _Optional[str] = ..., lcp_ms: _Optional[float] = ..., inp_ms: _Optional[float] = ..., cls: _Optional[float] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., page_load_ms: _Optional[float] = ..., session_hint: _Optional[str] = ..., engagement_time_ms: _Optional[int] = ..., consent: _Optional[str] = ..., screen_width: _Optional[int] = ..., screen_height: _Optional[int] = ..., properties: _Optional[_Mapping[str, str]] = ..., survey_id: _Optional[str] = ..., feedback_scale: _Optional[str] = ..., feedback_score: _Optional[int] = ..., feedback_comment: _Optional[str] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("batch_id", "events", "do_not_track")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    DO_NOT_TRACK_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    events: _containers.RepeatedCompositeFieldContainer[Event]
    do_not_track: bool
    def __init__(self, batch_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., do_not_track: bool = ...) -> None: ...

class EventResult(_message.Message):
    __slots__ = ("status", "event_id", "reason", "detail")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    status: Status
    event_id: str
    reason: str
    detail: str
    def __init__(self, status: _Optional[_Union[Status, str]] = ..., event_id: _Optional[str] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("batch_id", "status", "error", "detail", "retry_after", "credits", "accepted", "rejected", "skipped", "results")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    status: int
    error: str
    detail: str
    retry_after: int
    credits: int
    accepted: int
    rejected: int
    skipped: int
    results: _containers.RepeatedCompositeFieldContainer[EventResult]
    def __init__(self, batch_id: _Optional[str] = ..., status: _Optional[int] = ..., error: _Optional[str] = ..., detail: _Optional[str] = ..., retry_after: _Optional[int] = ..., credits: _Optional[int] = ..., accepted: _Optional[int] = ..., rejected: _Optional[int] = ..., skipped: _Optional[int] = ..., results: _Optional[_Iterable[_Union[EventResult, _Mapping]]] = ...) -> None: ...
