//! The AWS Lambda API subset (2015-03-31) that AWS clients (boto3, the AWS CLI) use with
//! `--endpoint-url`: CreateFunction (PackageType Image), GetFunction,
//! GetFunctionConfiguration, ListFunctions, UpdateFunctionCode,
//! UpdateFunctionConfiguration, DeleteFunction and Invoke. Handlers translate AWS shapes to
//! the same [`Platform`] operations as the rest of the API. Every request must be signed
//! with Signature V4 by an access key of the daemon (checked by
//! [`crate::access_keys_api::require_signature`]). Errors use AWS's shape: the
//! `x-amzn-ErrorType` header and a JSON body with the message.

use crate::access_keys_api::AwsCaller;
use crate::AppState;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use base64::Engine;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{json, Value};
use skiff_core::access::qualify;
use skiff_core::api::headers::{
    AMZN_ERROR_TYPE_HEADER, AMZN_REQUEST_ID_HEADER, AMZ_EXECUTED_VERSION_HEADER,
    AMZ_FUNCTION_ERROR_HEADER, AMZ_INVOCATION_TYPE_HEADER, AMZ_LOG_RESULT_HEADER,
    AMZ_LOG_TYPE_HEADER, CALL_ID_HEADER,
};
use skiff_core::{
    ByteSize, CallErrorType, Contract, Function, FunctionSpec, HumanDuration, Trigger,
};
use skiff_invoker::{InvokeRequest, PlatformError};
use std::collections::BTreeMap;
use std::time::Duration;

/// An error in AWS's shape.
#[derive(Debug)]
pub struct AwsError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl AwsError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        AwsError {
            status,
            kind,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        AwsError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            message,
        )
    }

    /// A JSON body that could not be read: too large (413), or not valid (400).
    fn rejected(rejection: &JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AwsError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestTooLargeException",
                format!(
                    "the request body is larger than the limit of {} bytes",
                    crate::MAX_JSON_BODY_BYTES
                ),
            )
        } else {
            AwsError::invalid(rejection.body_text())
        }
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let body = json!({"Type": "User", "Message": self.message, "message": self.message});
        let mut response = (self.status, Json(body)).into_response();
        response
            .headers_mut()
            .insert(AMZN_ERROR_TYPE_HEADER, HeaderValue::from_static(self.kind));
        response
    }
}

impl From<PlatformError> for AwsError {
    fn from(err: PlatformError) -> Self {
        match err {
            PlatformError::FunctionNotFound { name } => AwsError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("Function not found: {name}"),
            ),
            err @ (PlatformError::InvalidSpec(_)
            | PlatformError::ImageNotFound { .. }
            | PlatformError::NotInRegistry { .. }
            | PlatformError::Registry { .. }
            | PlatformError::BadRequest { .. }) => AwsError::invalid(err.to_string()),
            err @ PlatformError::PayloadTooLarge { .. } => AwsError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestTooLargeException",
                err.to_string(),
            ),
            err @ (PlatformError::Overloaded { .. } | PlatformError::NearFdLimit { .. }) => {
                AwsError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequestsException",
                    err.to_string(),
                )
            }
            err @ PlatformError::ShuttingDown => AwsError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceException",
                err.to_string(),
            ),
            other => {
                tracing::error!(err = %other, "Lambda API request failed");
                AwsError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ServiceException",
                    "internal error; see the daemon's log",
                )
            }
        }
    }
}

/// A function name, a partial ARN or a full ARN (with an optional qualifier), as AWS
/// accepts them, as the full name of the function in `namespace`: an access key acts in its
/// own namespace, so a name holding a namespace is refused.
fn function_name(raw: &str, namespace: &str) -> Result<String, AwsError> {
    let name = raw.rsplit_once(":function:").map_or(raw, |(_, rest)| rest);
    let name = name.split(':').next().unwrap_or(name);
    if name.contains(skiff_core::access::NAMESPACE_SEPARATOR) {
        return Err(AwsError::invalid(format!(
            "`{name}` is not a function name of this API: an access key acts in its own \
             namespace, `{namespace}`"
        )));
    }
    Ok(qualify(namespace, name))
}

/// A function's configuration in AWS's shape. Secret values are never in it: its
/// `Environment.Variables` holds the plain variables only.
fn configuration(state: &AppState, f: &Function) -> Value {
    let c = &f.config;
    let env = &c.env;
    let mut image_config = serde_json::Map::new();
    if let Some(handler) = &c.handler {
        image_config.insert("Command".into(), json!([handler]));
    }
    json!({
        "FunctionName": f.name.local_name(),
        "FunctionArn": state.platform.function_arn(f.name.local_name()),
        "Role": "arn:aws:iam::000000000000:role/skiff",
        "PackageType": "Image",
        "CodeSha256": f.image_digest.trim_start_matches("sha256:"),
        "CodeSize": 0,
        "Description": "",
        "Timeout": c.timeout().as_secs().max(1),
        "MemorySize": c.resources.memory_bytes >> 20,
        "LastModified": f.updated_at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
        "Version": "$LATEST",
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "Environment": {"Variables": env},
        "ImageConfigResponse": {"ImageConfig": image_config},
        "Architectures": ["x86_64"],
        "EphemeralStorage": {"Size": c.resources.tmp_bytes >> 20},
        "TracingConfig": {"Mode": "PassThrough"},
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Code {
    image_uri: Option<String>,
    zip_file: Option<String>,
    s3_bucket: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Environment {
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImageConfig {
    command: Option<Vec<String>>,
}

/// The fields of CreateFunction and UpdateFunctionConfiguration that skiff uses; the others
/// (Role, Description, Tags, VpcConfig, ...) are accepted and ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FunctionInput {
    function_name: Option<String>,
    package_type: Option<String>,
    code: Option<Code>,
    memory_size: Option<u64>,
    timeout: Option<u64>,
    environment: Option<Environment>,
    image_config: Option<ImageConfig>,
    handler: Option<String>,
}

impl FunctionInput {
    /// Applies the given fields to `spec`.
    fn apply(self, spec: &mut FunctionSpec) {
        if let Some(mb) = self.memory_size {
            spec.memory = Some(ByteSize(mb << 20));
        }
        if let Some(seconds) = self.timeout {
            spec.timeout = Some(HumanDuration(Duration::from_secs(seconds)));
        }
        if let Some(environment) = self.environment {
            // Lambda has one set of variables, and secrets are never shown in it: a client
            // that sends back what it read keeps every secret, and a variable named like a
            // secret sets the secret's value (it stays a secret).
            let (secrets, env): (BTreeMap<_, _>, BTreeMap<_, _>) = environment
                .variables
                .into_iter()
                .partition(|(name, _)| spec.secrets.contains_key(name));
            spec.secrets.extend(secrets);
            spec.env = env;
        }
        if let Some(command) = self
            .image_config
            .and_then(|c| c.command)
            .and_then(|c| c.into_iter().next())
        {
            spec.handler = Some(command);
        } else if let Some(handler) = self.handler {
            spec.handler = Some(handler);
        }
    }
}

async fn parse(
    body: Result<Json<FunctionInput>, JsonRejection>,
) -> Result<FunctionInput, AwsError> {
    body.map(|Json(input)| input)
        .map_err(|rejection| AwsError::rejected(&rejection))
}

/// `POST /2015-03-31/functions` (CreateFunction).
async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<AwsCaller>,
    body: Result<Json<FunctionInput>, JsonRejection>,
) -> Result<Response, AwsError> {
    let mut input = parse(body).await?;
    let name = function_name(
        input
            .function_name
            .as_deref()
            .ok_or_else(|| AwsError::invalid("FunctionName is required"))?,
        &caller.namespace,
    )?;
    if input.package_type.as_deref().is_some_and(|t| t != "Image") {
        return Err(AwsError::invalid(
            "only PackageType Image is supported: functions are container images",
        ));
    }
    let code = input.code.take().unwrap_or_default();
    if code.zip_file.is_some() || code.s3_bucket.is_some() {
        return Err(AwsError::invalid(
            "only container images (Code.ImageUri) are supported",
        ));
    }
    let image = code
        .image_uri
        .ok_or_else(|| AwsError::invalid("Code.ImageUri is required"))?;
    if state.platform.function(&name).is_ok() {
        return Err(AwsError::new(
            StatusCode::CONFLICT,
            "ResourceConflictException",
            format!("Function already exist: {name}"),
        ));
    }
    let mut spec = FunctionSpec {
        image,
        contract: Some(Contract::Lambda),
        timeout: Some(HumanDuration(Duration::from_secs(3))),
        memory: Some(ByteSize::mib(128)),
        ..Default::default()
    };
    input.apply(&mut spec);
    deploy_pulling(&state, &name, &spec).await?;
    let function = state.platform.function(&name)?;
    Ok((StatusCode::CREATED, Json(configuration(&state, &function))).into_response())
}

/// `GET /2015-03-31/functions/` (ListFunctions).
async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<AwsCaller>,
) -> Result<Json<Value>, AwsError> {
    let mut functions = Vec::new();
    for view in state.platform.list_functions_in(&caller.namespace) {
        if let Ok(f) = state
            .platform
            .function(&qualify(&view.namespace, &view.name))
        {
            functions.push(configuration(&state, &f));
        }
    }
    Ok(Json(json!({"Functions": functions})))
}

/// `GET /2015-03-31/functions/{name}` (GetFunction).
async fn get_function(
    State(state): State<AppState>,
    Extension(caller): Extension<AwsCaller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AwsError> {
    let f = state
        .platform
        .function(&function_name(&name, &caller.namespace)?)?;
    Ok(Json(json!({
        "Configuration": configuration(&state, &f),
        "Code": {"RepositoryType": "ECR", "ImageUri": f.config.image, "ResolvedImageUri": f.image_digest},
    })))
}

/// `GET /2015-03-31/functions/{name}/configuration` (GetFunctionConfiguration).
async fn get_configuration(
    State(state): State<AppState>,
    Extension(caller): Extension<AwsCaller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AwsError> {
    let f = state
        .platform
        .function(&function_name(&name, &caller.namespace)?)?;
    Ok(Json(configuration(&state, &f)))
}

/// Deploys `spec`, pulling its image first when the engine lacks it, as AWS takes an
/// image from its registry. An access key acts in one namespace: the pull is anonymous, and
/// a registry on this host or a private network is not pulled from (the image must be on
/// the engine already).
async fn deploy_pulling(state: &AppState, name: &str, spec: &FunctionSpec) -> Result<(), AwsError> {
    match state.platform.deploy(name, spec).await {
        Err(PlatformError::ImageNotFound { .. })
            if !skiff_invoker::registry_is_local(&spec.image) =>
        {
            state.platform.pull_to_end(&spec.image, false).await?;
            state.platform.deploy(name, spec).await?;
            Ok(())
        }
        other => other.map(|_| ()).map_err(AwsError::from),
    }
}

async fn redeploy(
    state: &AppState,
    name: &str,
    change: impl FnOnce(&mut FunctionSpec),
) -> Result<Json<Value>, AwsError> {
    let current = state.platform.function(name)?;
    let mut spec = current.config.to_spec();
    change(&mut spec);
    deploy_pulling(state, name, &spec).await?;
    let f = state.platform.function(name)?;
    Ok(Json(configuration(state, &f)))
}

/// `PUT /2015-03-31/functions/{name}/code` (UpdateFunctionCode).
async fn update_code(
    State(state): State<AppState>,
    Extension(caller): Extension<AwsCaller>,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, AwsError> {
    let Json(body) = body.map_err(|r| AwsError::rejected(&r))?;
    let image = body["ImageUri"]
        .as_str()
        .ok_or_else(|| AwsError::invalid("ImageUri is required: functions are container images"))?
        .to_string();
    redeploy(&state, &function_name(&name, &caller.namespace)?, |spec| {
        spec.image = image
    })
    .await
}

/// `PUT /2015-03-31/functions/{name}/configuration` (UpdateFunctionConfiguration).
async fn update_configuration(
    State(state): State<AppState>,
    Extension(caller): Extension<AwsCaller>,
    Path(name): Path<String>,
    body: Result<Json<FunctionInput>, JsonRejection>,
) -> Result<Json<Value>, AwsError> {
    let input = parse(body).await?;
    redeploy(&state, &function_name(&name, &caller.namespace)?, |spec| {
        input.apply(spec)
    })
    .await
}

/// `DELETE /2015-03-31/functions/{name}` (DeleteFunction).
async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<AwsCaller>,
    Path(name): Path<String>,
) -> Result<StatusCode, AwsError> {
    state
        .platform
        .delete_function(&function_name(&name, &caller.namespace)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /2015-03-31/functions/{name}/invocations` (Invoke).
async fn invoke(
    State(state): State<AppState>,
    Extension(caller): Extension<AwsCaller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AwsError> {
    let name = function_name(&name, &caller.namespace)?;
    let invocation_type = headers
        .get(AMZ_INVOCATION_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse");
    let tail = headers
        .get(AMZ_LOG_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("Tail"));
    let request = InvokeRequest {
        trigger: Trigger::LambdaApi,
        method: Method::POST,
        path: "/".to_string(),
        query: String::new(),
        headers: HeaderMap::new(),
        body: crate::api::stream(body),
        call_id: None,
        attempt: 1,
        caller: None,
        from_queue: false,
    };
    match invocation_type {
        "DryRun" => {
            state.platform.function(&name)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        "Event" => {
            let mut request = request;
            request.trigger = Trigger::Async;
            let id = state.platform.enqueue(&name, request).await?;
            let mut response = StatusCode::ACCEPTED.into_response();
            if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
                response.headers_mut().insert(AMZN_REQUEST_ID_HEADER, value);
            }
            Ok(response)
        }
        "RequestResponse" => {
            let (status, call_id, payload, function_error) =
                match state.platform.invoke(&name, request).await {
                    Ok(outcome) => {
                        let payload = outcome
                            .body
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        (StatusCode::OK, outcome.call_id, payload, None)
                    }
                    Err(PlatformError::CallFailed {
                        call_id,
                        error_type,
                        message,
                        ..
                    }) => {
                        // A function error is a 200 with X-Amz-Function-Error, as on AWS.
                        let (kind, error_type_name) = match error_type {
                            CallErrorType::FunctionError => ("Unhandled", "Unhandled"),
                            CallErrorType::Timeout => ("Unhandled", "Sandbox.Timedout"),
                            CallErrorType::OutOfMemory => ("Unhandled", "Runtime.OutOfMemory"),
                            CallErrorType::Crashed => ("Unhandled", "Runtime.ExitError"),
                            _ => ("Unhandled", "Runtime.Unknown"),
                        };
                        let payload = function_error_payload(&message, error_type_name);
                        (StatusCode::OK, call_id, payload, Some(kind))
                    }
                    Err(other) => return Err(other.into()),
                };
            let mut response = (status, payload).into_response();
            let h = response.headers_mut();
            h.insert("content-type", HeaderValue::from_static("application/json"));
            h.insert(
                AMZ_EXECUTED_VERSION_HEADER,
                HeaderValue::from_static("$LATEST"),
            );
            if let Ok(value) = HeaderValue::from_str(&call_id.to_string()) {
                h.insert(AMZN_REQUEST_ID_HEADER, value.clone());
                h.insert(CALL_ID_HEADER, value);
            }
            if let Some(kind) = function_error {
                h.insert(AMZ_FUNCTION_ERROR_HEADER, HeaderValue::from_static(kind));
            }
            if tail {
                // The function's output trails its answer by a few milliseconds.
                tokio::time::sleep(Duration::from_millis(150)).await;
                let logs = state.platform.call_logs(call_id).await.unwrap_or_default();
                let start = logs.len().saturating_sub(4096);
                let encoded = base64::engine::general_purpose::STANDARD.encode(&logs[start..]);
                if let Ok(value) = HeaderValue::from_str(&encoded) {
                    h.insert(AMZ_LOG_RESULT_HEADER, value);
                }
            }
            Ok(response)
        }
        other => Err(AwsError::invalid(format!(
            "X-Amz-Invocation-Type must be RequestResponse, Event or DryRun, not {other}"
        ))),
    }
}

/// The error document of a failed call: the function's own (for `/error` reports, the
/// message carries it after `type: `), else one in AWS's shape.
fn function_error_payload(message: &str, error_type: &str) -> axum::body::Bytes {
    if let Some((_, document)) = message.split_once(": ") {
        if serde_json::from_str::<Value>(document).is_ok_and(|v| v.is_object()) {
            return axum::body::Bytes::from(document.to_string());
        }
    }
    axum::body::Bytes::from(json!({"errorMessage": message, "errorType": error_type}).to_string())
}

/// The Lambda API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/2015-03-31/functions", post(create).get(list))
        .route("/2015-03-31/functions/", get(list).post(create))
        .route(
            "/2015-03-31/functions/{name}",
            get(get_function).delete(delete),
        )
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(get_configuration).put(update_configuration),
        )
        .route("/2015-03-31/functions/{name}/code", put(update_code))
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arns_resolve_to_names() {
        let name = |raw: &str| {
            function_name(raw, "default")
                .map_err(|_| ())
                .expect("a name")
        };
        assert_eq!(name("hello"), "hello");
        assert_eq!(
            name("arn:aws:lambda:us-east-1:000000000000:function:hello"),
            "hello"
        );
        assert_eq!(
            name("arn:aws:lambda:us-east-1:000000000000:function:hello:$LATEST"),
            "hello"
        );
        assert_eq!(name("hello:prod"), "hello");
        // A key reaches its own namespace, and no other.
        assert_eq!(
            function_name("hello", "team-a").map_err(|_| ()),
            Ok("team-a.hello".to_string())
        );
        assert!(function_name("team-b.hello", "team-a").is_err());
    }

    #[test]
    fn updating_the_environment_keeps_secrets_secret() {
        let mut spec = FunctionSpec {
            image: "x".into(),
            env: BTreeMap::from([("MODE".into(), "env".into())]),
            secrets: BTreeMap::from([
                ("API_TOKEN".into(), "s3cret".into()),
                ("DB_PASSWORD".into(), "hunter2".into()),
            ]),
            ..Default::default()
        };
        // Memory only: nothing else changes.
        let memory: FunctionInput =
            serde_json::from_value(json!({"MemorySize": 256})).expect("input");
        memory.apply(&mut spec);
        assert_eq!(spec.secrets.len(), 2);
        // The variables as read back (no secret among them), one changed, one added, and a
        // secret's name: that one is a new value of the secret.
        let env: FunctionInput = serde_json::from_value(json!({"Environment": {"Variables": {
            "MODE": "env", "GREETING": "ho", "DB_PASSWORD": "rotated"}}}))
        .expect("input");
        env.apply(&mut spec);
        assert_eq!(
            spec.env,
            BTreeMap::from([
                ("GREETING".into(), "ho".into()),
                ("MODE".into(), "env".into())
            ])
        );
        assert_eq!(
            spec.secrets,
            BTreeMap::from([
                ("API_TOKEN".into(), "s3cret".into()),
                ("DB_PASSWORD".into(), "rotated".into())
            ])
        );
        assert!(spec.validate().is_ok());
    }

    #[test]
    fn function_errors_keep_the_functions_own_document() {
        let payload = function_error_payload(
            r#"Unhandled: {"errorMessage":"boom","errorType":"E"}"#,
            "Unhandled",
        );
        assert_eq!(&payload[..], br#"{"errorMessage":"boom","errorType":"E"}"#);
        let payload = function_error_payload("the call ran past its timeout", "Sandbox.Timedout");
        let v: Value = serde_json::from_slice(&payload).expect("json");
        assert_eq!(v["errorType"], "Sandbox.Timedout");
    }
}
