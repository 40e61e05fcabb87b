//! `/v1/triggers` without a socket (`app().oneshot(request)`), on an in-memory store and the
//! fake engine: create, replace, read, list, delete, typed errors, and a function's
//! triggers going with it. Firing on real containers is proven by the `skiff` crate's
//! end-to-end tests.

mod common;

use axum::http::StatusCode;
use common::{send_json, Harness};
use serde_json::{json, Value};

#[tokio::test]
async fn triggers_are_created_replaced_listed_and_deleted() {
    let h = Harness::hello().await;
    let app = &h.api;
    let (status, _) = send_json(
        app,
        "PUT",
        "/v1/functions/hello",
        json!({"image": "hello:1"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let spec = json!({"function": "hello", "cron": {"schedule": "0 9 * * MON-FRI", "timezone": "Europe/Paris"}, "body": "hi"});
    let (status, created) = send_json(app, "PUT", "/v1/triggers/morning", spec).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "morning");
    assert_eq!(created["kind"], "cron");
    assert_eq!(created["state"], "scheduled");
    assert_eq!(created["cron"]["missed"], "run_once");
    assert_eq!(created["body"], "hi");
    assert!(created["next_tick"].is_string(), "{created}");

    let spec = json!({"function": "hello", "cron": {"schedule": "@daily", "missed": "skip"}});
    let (status, replaced) = send_json(app, "PUT", "/v1/triggers/morning", spec).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["cron"]["schedule"], "@daily");
    assert_eq!(replaced["cron"]["timezone"], "UTC");

    let (status, list) = send_json(app, "GET", "/v1/triggers", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["triggers"].as_array().map(Vec::len), Some(1), "{list}");
    let (status, one) = send_json(app, "GET", "/v1/triggers/morning", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["cron"]["missed"], "skip");

    let (status, _) = send_json(app, "DELETE", "/v1/triggers/morning", Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = send_json(app, "DELETE", "/v1/triggers/morning", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "trigger_not_found");

    // A function's triggers go with it.
    let spec = json!({"function": "hello", "cron": {"schedule": "@hourly"}});
    let (status, _) = send_json(app, "PUT", "/v1/triggers/hourly", spec).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = send_json(app, "DELETE", "/v1/functions/hello", Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = send_json(app, "GET", "/v1/triggers", Value::Null).await;
    assert_eq!(list["triggers"], json!([]));
}

#[tokio::test]
async fn bad_triggers_are_refused_with_typed_errors() {
    let h = Harness::hello().await;
    let app = &h.api;
    let (status, _) = send_json(
        app,
        "PUT",
        "/v1/functions/hello",
        json!({"image": "hello:1"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    for (name, spec, status, code, field) in [
        (
            "t",
            json!({"function": "hello", "cron": {"schedule": "* * *"}}),
            400,
            "invalid_trigger",
            Some("cron.schedule"),
        ),
        (
            "t",
            json!({"function": "hello", "cron": {"schedule": "@hourly", "timezone": "Nowhere/City"}}),
            400,
            "invalid_trigger",
            Some("cron.timezone"),
        ),
        (
            "t",
            json!({"function": "hello", "cron": {"schedule": "@hourly"}, "nats": {"url": "nats://h:1", "stream": "S", "subjects": ["a"]}}),
            400,
            "invalid_trigger",
            Some("cron"),
        ),
        (
            "t",
            json!({"function": "hello", "nats": {"url": "nats://h:1", "stream": "S", "subjects": ["a"], "max_deliver": 0}}),
            400,
            "invalid_trigger",
            Some("nats.max_deliver"),
        ),
        (
            "t",
            json!({"function": "hello", "cron": {"schedule": "@hourly", "missed": "replay"}}),
            400,
            "invalid_trigger",
            None,
        ),
        (
            "t",
            json!({"function": "ghost", "cron": {"schedule": "@hourly"}}),
            404,
            "function_not_found",
            None,
        ),
        (
            "bad!name",
            json!({"function": "hello", "cron": {"schedule": "@hourly"}}),
            400,
            "invalid_trigger",
            Some("name"),
        ),
    ] {
        let (got, body) =
            send_json(app, "PUT", &format!("/v1/triggers/{name}"), spec.clone()).await;
        assert_eq!(got.as_u16(), status, "{spec}: {body}");
        assert_eq!(body["error"]["code"], code, "{spec}: {body}");
        if let Some(field) = field {
            assert_eq!(body["error"]["field"], field, "{spec}: {body}");
        }
    }
    let (status, body) = send_json(app, "GET", "/v1/triggers/none", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "trigger_not_found");
}
