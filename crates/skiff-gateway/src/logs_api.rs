//! A function's logs, followed live or read from what its instances wrote, and the stats
//! of its calls.

use crate::auth::Access;
use crate::error::ApiError;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::{Stream, StreamExt};
use skiff_core::api::{
    ErrorBody, FunctionStats, InstanceLogQuery, InstanceLogs, LogEvent, StatsQuery,
};
use skiff_store::InstanceLogFilter;
use std::convert::Infallible;
use std::time::Duration;

/// How often a followed log with nothing to say sends a keep-alive (a blank line as NDJSON,
/// a comment as server-sent events), so that a follower gone away is noticed.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The media type of NDJSON.
const NDJSON: &str = "application/x-ndjson";

/// Whether the client asked for server-sent events.
fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// `GET /v1/functions/{name}/logs/follow`: what the function writes from now on, line by
/// line, as it is written, until the daemon stops.
#[utoipa::path(get, path = "/v1/functions/{name}/logs/follow", tag = "calls",
    params(("name" = String, Path, description = "Function name"),
        ("Accept" = Option<String>, Header, description = "`text/event-stream` for server-sent events (event `line` or `lagged`, the JSON as data); otherwise NDJSON")),
    responses(
        (status = 200, description = "A stream of `LogEvent`s, one JSON object a line (`application/x-ndjson`; blank lines are keep-alives), or server-sent events. Every line of the function's output: the stderr of each call of an `exec` function (`call` set), stdout and stderr of each instance of an `http` or `lambda` function (`instance` set). A follower that reads too slowly gets a `lagged` event with the number of lines it missed; calls never wait for followers.",
            content_type = "application/x-ndjson", body = LogEvent),
        (status = 404, body = ErrorBody),
        (status = 429, description = "Too many followers at once", body = ErrorBody)))]
pub async fn follow(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let events = state.platform.follow_logs(&access.full(&name)?)?;
    if wants_sse(&headers) {
        let events = events.map(|event| {
            Ok::<_, Infallible>(
                Event::default()
                    .event(event.name())
                    .json_data(&event)
                    .unwrap_or_else(|_| Event::default().comment("unencodable")),
            )
        });
        return Ok(Sse::new(events)
            .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
            .into_response());
    }
    Ok(ndjson(events))
}

/// An answer of NDJSON, one line per event as it comes, a blank keep-alive line whenever
/// nothing came for [`KEEP_ALIVE`], never cached.
pub(crate) fn ndjson<T: serde::Serialize + Send + 'static>(
    events: impl Stream<Item = T> + Send + 'static,
) -> Response {
    let lines = with_keep_alive(events, KEEP_ALIVE).map(|item| {
        let bytes = match item {
            Some(event) => {
                let mut line = serde_json::to_vec(&event).unwrap_or_default();
                line.push(b'\n');
                Bytes::from(line)
            }
            None => Bytes::from_static(b"\n"),
        };
        Ok::<_, Infallible>(bytes)
    });
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(NDJSON)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(lines),
    )
        .into_response()
}

/// `events`, with a `None` whenever nothing came for `every`; ends when `events` ends.
fn with_keep_alive<T: Send + 'static>(
    events: impl Stream<Item = T> + Send + 'static,
    every: Duration,
) -> impl Stream<Item = Option<T>> + Send + 'static {
    let events = Box::pin(events);
    futures::stream::unfold(events, move |mut events| async move {
        match tokio::time::timeout(every, events.next()).await {
            Ok(Some(event)) => Some((Some(event), events)),
            Ok(None) => None,
            Err(_quiet) => Some((None, events)),
        }
    })
}

/// `GET /v1/functions/{name}/instances/{id}/logs`: the lines an instance wrote, oldest first.
#[utoipa::path(get, path = "/v1/functions/{name}/instances/{id}/logs", tag = "functions",
    params(("name" = String, Path, description = "Function name"),
        ("id" = String, Path, description = "Instance id"), InstanceLogQuery),
    responses(
        (status = 200, description = "What the instance wrote to stdout and stderr, line by line. The last 10,000 lines of each instance are kept, and 500,000 lines in all.", body = InstanceLogs),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn instance_logs(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path((name, id)): Path<(String, String)>,
    query: Result<Query<InstanceLogQuery>, QueryRejection>,
) -> Result<Json<InstanceLogs>, ApiError> {
    let Query(query) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let filter = InstanceLogFilter {
        since: query.since,
        until: query.until,
        limit: query.limit.unwrap_or(0),
        ..InstanceLogFilter::default()
    };
    let lines = state
        .platform
        .instance_logs(&access.full(&name)?, Some(&id), filter)
        .await?;
    Ok(Json(InstanceLogs { lines }))
}

/// `GET /v1/functions/{name}/stats?window=`: the function's calls over a window, in buckets.
#[utoipa::path(get, path = "/v1/functions/{name}/stats", tag = "functions",
    params(("name" = String, Path, description = "Function name"), StatsQuery),
    responses(
        (status = 200, description = "Calls, errors, latency percentiles, cold starts and their duration, and queue wait, over the window and in up to 60 buckets, from the call records", body = FunctionStats),
        (status = 400, description = "A window that is not a duration from 1m to 7d", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn stats(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<FunctionStats>, ApiError> {
    let Query(query) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let window =
        skiff_core::stats::parse_window(query.window.as_deref()).map_err(ApiError::bad_request)?;
    Ok(Json(
        state
            .platform
            .function_stats(&access.full(&name)?, window)
            .await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn quiet_streams_get_keep_alives_and_end_with_their_events() {
        let (tx, rx) = tokio::sync::mpsc::channel::<LogEvent>(4);
        let events =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
        let mut stream = Box::pin(with_keep_alive(events, Duration::from_secs(15)));
        assert_eq!(stream.next().await, Some(None), "a keep-alive when quiet");
        tx.send(LogEvent::Lagged { skipped: 2 })
            .await
            .expect("send");
        assert_eq!(
            stream.next().await,
            Some(Some(LogEvent::Lagged { skipped: 2 }))
        );
        drop(tx);
        assert_eq!(stream.next().await, None);
    }
}
