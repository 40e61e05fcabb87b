//! The names of the HTTP headers skiff reads and writes, each written once. Names are
//! lower case, as HTTP/2 and `http::HeaderName` want them; HTTP/1.1 matches them in any case.

/// The namespace a management request is about (`default` unless the credential has
/// one namespace only, which is then the default).
pub const NAMESPACE_HEADER: &str = "x-skiff-namespace";
/// A function's invoke key, as an alternative to `Authorization: Bearer`.
pub const KEY_HEADER: &str = "x-skiff-key";
/// The cookie the dashboard keeps its token in (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "skiff_session";

/// The id of the call an invocation recorded: on invoke responses (answered or failed), on
/// 202s of async calls, on requests to `http` instances, and on callbacks.
pub const CALL_ID_HEADER: &str = "x-skiff-call-id";
/// Whether an invocation waited for a container start (`true` or `false`), on invoke
/// responses.
pub const COLD_HEADER: &str = "x-skiff-cold";
/// The request header naming an async call's callback URL (not passed to the function).
pub const CALLBACK_HEADER: &str = "x-skiff-callback-url";
/// The header carrying a call's depth: how many function-to-function hops led to it. A
/// function that passes on the header it received lets skiff count hops across any route.
pub const DEPTH_HEADER: &str = "x-skiff-depth";
/// The header carrying the call's deadline (RFC 3339) to an `http` instance.
pub const DEADLINE_HEADER: &str = "x-skiff-deadline";

/// On a callback: the function that was called.
pub const FUNCTION_HEADER: &str = "x-skiff-function";
/// On a callback: the attempt that made the call final.
pub const ATTEMPT_HEADER: &str = "x-skiff-attempt";
/// On a callback: how the call ended (`succeeded` or `dead`).
pub const STATUS_HEADER: &str = "x-skiff-status";
/// On a callback: the HTTP status the function answered, when it answered.
pub const STATUS_CODE_HEADER: &str = "x-skiff-status-code";

/// On a call started by a trigger: the trigger's name.
pub const TRIGGER_HEADER: &str = "x-skiff-trigger";
/// On a call started by a cron trigger: the tick it is for (RFC 3339).
pub const SCHEDULED_AT_HEADER: &str = "x-skiff-scheduled-at";
/// On a call started by a broker message: how many times the message was delivered.
pub const DELIVERY_HEADER: &str = "x-skiff-delivery";

/// The request header asking for an async call, with [`RESPOND_ASYNC`] (RFC 7240).
pub const PREFER_HEADER: &str = "prefer";
/// The preference that makes an invocation async: accepted durably, answered 202 at once.
pub const RESPOND_ASYNC: &str = "respond-async";
/// The response header saying which preference was honoured (RFC 7240).
pub const PREFERENCE_APPLIED_HEADER: &str = "preference-applied";

/// Lambda API (Invoke): `RequestResponse`, `Event` or `DryRun`.
pub const AMZ_INVOCATION_TYPE_HEADER: &str = "x-amz-invocation-type";
/// Lambda API (Invoke): `Tail` asks for the end of the call's log.
pub const AMZ_LOG_TYPE_HEADER: &str = "x-amz-log-type";
/// Lambda API (Invoke): the end of the call's log, base64.
pub const AMZ_LOG_RESULT_HEADER: &str = "x-amz-log-result";
/// Lambda API (Invoke): the version that ran.
pub const AMZ_EXECUTED_VERSION_HEADER: &str = "x-amz-executed-version";
/// Lambda API (Invoke): set when the function failed (`Unhandled`).
pub const AMZ_FUNCTION_ERROR_HEADER: &str = "x-amz-function-error";
/// Lambda API: the request's id (skiff's call id).
pub const AMZN_REQUEST_ID_HEADER: &str = "x-amzn-requestid";
/// Lambda API: the type of an error (`ResourceNotFoundException`, ...).
pub const AMZN_ERROR_TYPE_HEADER: &str = "x-amzn-errortype";

/// Lambda Runtime API (next event): the event's request id.
pub const RUNTIME_REQUEST_ID_HEADER: &str = "lambda-runtime-aws-request-id";
/// Lambda Runtime API (next event): the event's deadline, in milliseconds since the epoch.
pub const RUNTIME_DEADLINE_MS_HEADER: &str = "lambda-runtime-deadline-ms";
/// Lambda Runtime API (next event): the ARN of the function invoked.
pub const RUNTIME_FUNCTION_ARN_HEADER: &str = "lambda-runtime-invoked-function-arn";
/// Lambda Runtime API (next event): the trace id.
pub const RUNTIME_TRACE_ID_HEADER: &str = "lambda-runtime-trace-id";
/// Lambda Runtime API (error reports): the type of the function's error.
pub const RUNTIME_ERROR_TYPE_HEADER: &str = "lambda-runtime-function-error-type";
