//! Triggers: named resources that start calls of a function by themselves, from a cron
//! schedule or from a message broker's subscription.
//!
//! [`TriggerSpec`] is what a user sends (`PUT /v1/triggers/{name}`); [`TriggerSpec::validate`]
//! checks it and fills in the defaults. [`Schedule`] evaluates a cron trigger's ticks in its
//! time zone, and [`plan_tick`] decides, with no I/O, what the cron runner does next,
//! including the policy for ticks missed while the daemon was down.

use crate::spec::{FunctionName, SpecError};
use crate::units::HumanDuration;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use utoipa::ToSchema;
use uuid::Uuid;

/// Largest body a cron trigger sends with each call (the async call limit).
pub const MAX_TRIGGER_BODY: usize = 256 << 10;
/// Default most deliveries of one broker message before it is given up.
pub const DEFAULT_MAX_DELIVER: u32 = 5;
/// Default broker messages handled at once by one trigger.
pub const DEFAULT_SOURCE_CONCURRENCY: u32 = 4;
/// Margin added to the function's timeout to get a broker's default acknowledgement wait.
pub const ACK_WAIT_MARGIN: Duration = Duration::from_secs(30);
/// The least acknowledgement wait beyond the function's timeout, whatever the spec says.
pub const MIN_ACK_WAIT_MARGIN: Duration = Duration::from_secs(5);
/// A cron schedule with no tick within this many years of its creation is refused: it
/// never fires (every schedule that can fire, February 29th on a given weekday included,
/// does so within 40 years).
pub const MAX_YEARS_TO_FIRST_TICK: i64 = 50;

/// A validated trigger name: the same rules as a function name (1 to 64 ASCII letters,
/// digits, `-` or `_`, starting with a letter or digit).
pub fn parse_trigger_name(name: &str) -> Result<String, SpecError> {
    FunctionName::parse(name)
        .map(|n| n.as_str().to_string())
        .map_err(|_| {
            SpecError::new(
                "name",
                format!("`{name}` is not a valid trigger name: use 1 to 64 letters, digits, `-` or `_`, starting with a letter or digit"),
            )
        })
}

/// What to do with the ticks of a cron trigger that passed while the daemon was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissedTicks {
    /// Fire one call, for the latest missed tick, then resume the schedule.
    #[default]
    RunOnce,
    /// Fire nothing for them; resume with the next tick.
    Skip,
}

impl MissedTicks {
    /// The policy as users write it.
    pub fn as_str(self) -> &'static str {
        match self {
            MissedTicks::RunOnce => "run_once",
            MissedTicks::Skip => "skip",
        }
    }
}

impl fmt::Display for MissedTicks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MissedTicks {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "run_once" => Ok(MissedTicks::RunOnce),
            "skip" => Ok(MissedTicks::Skip),
            other => Err(SpecError::new(
                "cron.missed",
                format!("`{other}` is not a policy: use `run_once` or `skip`"),
            )),
        }
    }
}

/// A cron schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CronSpec {
    /// A cron expression: five fields (minute hour day-of-month month day-of-week), or six
    /// with seconds first, or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
    #[schema(example = "*/5 * * * *")]
    pub schedule: String,
    /// The IANA time zone the schedule is read in. Default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "Europe/Paris")]
    pub timezone: Option<String>,
    /// Ticks missed while the daemon was down: `run_once` (default) or `skip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<MissedTicks>,
}

/// A NATS JetStream subscription: each message becomes a call; it is acknowledged once the
/// call succeeded, and delivered again after a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsSpec {
    /// The server, `nats://host:port`.
    #[schema(example = "nats://127.0.0.1:4222")]
    pub url: String,
    /// The JetStream stream (created for the subjects if it does not exist).
    #[schema(example = "VOTES")]
    pub stream: String,
    /// The subjects to take messages from (wildcards allowed).
    #[schema(example = json!(["votes.>"]))]
    pub subjects: Vec<String>,
    /// Most deliveries of one message before it is given up. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deliver: Option<u32>,
    /// How long the broker waits for an acknowledgement before it delivers a message again.
    /// Default: the function's timeout plus 30s; never less than the timeout plus 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "60s")]
    pub ack_wait: Option<HumanDuration>,
    /// Messages handled at once. Default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

impl NatsSpec {
    /// Most deliveries of one message.
    pub fn max_deliver(&self) -> u32 {
        self.max_deliver.unwrap_or(DEFAULT_MAX_DELIVER)
    }

    /// Messages handled at once.
    pub fn concurrency(&self) -> u32 {
        self.concurrency.unwrap_or(DEFAULT_SOURCE_CONCURRENCY)
    }

    /// The acknowledgement wait for a function whose calls take at most `timeout`.
    pub fn ack_wait(&self, timeout: Duration) -> Duration {
        let floor = timeout + MIN_ACK_WAIT_MARGIN;
        self.ack_wait
            .map_or(timeout + ACK_WAIT_MARGIN, |d| d.0)
            .max(floor)
    }
}

/// A trigger as a user describes it: the body of `PUT /v1/triggers/{name}`. Exactly one
/// source (`cron` or `nats`) is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// The function called.
    pub function: String,
    /// A cron schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<CronSpec>,
    /// A NATS JetStream subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsSpec>,
    /// JSON sent as the body of each cron call (`Content-Type: application/json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
    /// Text sent as the body of each cron call (`Content-Type: text/plain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// What kind of source a trigger has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// A cron schedule.
    Cron,
    /// A NATS JetStream subscription.
    Nats,
}

impl TriggerKind {
    /// The kind as shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Cron => "cron",
            TriggerKind::Nats => "nats",
        }
    }
}

impl TriggerSpec {
    /// The kind of source.
    pub fn kind(&self) -> TriggerKind {
        if self.nats.is_some() {
            TriggerKind::Nats
        } else {
            TriggerKind::Cron
        }
    }

    /// Checks the spec and returns it with every default filled in: a cron schedule that
    /// parses in a known IANA time zone, or a `nats://` URL with a stream and subjects.
    pub fn validate(&self) -> Result<TriggerSpec, SpecError> {
        let function = FunctionName::parse(&self.function)
            .map_err(|e| SpecError::new("function", e.message))?;
        let mut valid = self.clone();
        valid.function = function.to_string();
        match (&self.cron, &self.nats) {
            (Some(_), Some(_)) => {
                return Err(SpecError::new(
                    "cron",
                    "a trigger has one source: give `cron` or `nats`, not both",
                ))
            }
            (None, None) => {
                return Err(SpecError::new(
                    "cron",
                    "a trigger needs a source: give `cron` or `nats`",
                ))
            }
            (Some(cron), None) => {
                let schedule = Schedule::parse(cron)?;
                let now = Utc::now();
                let horizon = now + chrono::Duration::days(365 * MAX_YEARS_TO_FIRST_TICK);
                if schedule.next_after(now).is_none_or(|next| next > horizon) {
                    return Err(SpecError::new(
                        "cron.schedule",
                        format!(
                            "`{}` never fires: it has no tick in the next {MAX_YEARS_TO_FIRST_TICK} years (a day that does not exist, such as February 30?)",
                            cron.schedule.trim()
                        ),
                    ));
                }
                valid.cron = Some(CronSpec {
                    schedule: cron.schedule.trim().to_string(),
                    timezone: Some(schedule.timezone().to_string()),
                    missed: Some(schedule.missed()),
                });
                if self.payload.is_some() && self.body.is_some() {
                    return Err(SpecError::new(
                        "payload",
                        "give `payload` (JSON) or `body` (text), not both",
                    ));
                }
                let (_, body) = valid.cron_body();
                if body.len() > MAX_TRIGGER_BODY {
                    return Err(SpecError::new(
                        if self.payload.is_some() {
                            "payload"
                        } else {
                            "body"
                        },
                        format!(
                            "{} bytes is more than the limit of {MAX_TRIGGER_BODY} bytes",
                            body.len()
                        ),
                    ));
                }
            }
            (None, Some(nats)) => {
                if self.payload.is_some() || self.body.is_some() {
                    return Err(SpecError::new(
                        if self.payload.is_some() {
                            "payload"
                        } else {
                            "body"
                        },
                        "a NATS trigger sends each message's own body; `payload` and `body` are for cron triggers",
                    ));
                }
                valid.nats = Some(validate_nats(nats)?);
            }
        }
        Ok(valid)
    }

    /// The content type and body of each call of a cron trigger (empty when neither
    /// `payload` nor `body` is given).
    pub fn cron_body(&self) -> (Option<&'static str>, Vec<u8>) {
        if let Some(payload) = &self.payload {
            (
                Some("application/json"),
                serde_json::to_vec(payload).unwrap_or_default(),
            )
        } else if let Some(body) = &self.body {
            (Some("text/plain; charset=utf-8"), body.as_bytes().to_vec())
        } else {
            (None, Vec::new())
        }
    }
}

fn validate_nats(nats: &NatsSpec) -> Result<NatsSpec, SpecError> {
    let url = nats.url.trim();
    let rest = url.strip_prefix("nats://").ok_or_else(|| {
        SpecError::new(
            "nats.url",
            format!("`{url}` is not a NATS URL: use nats://host:port"),
        )
    })?;
    let host_port = rest.split('/').next().unwrap_or("");
    let host_port = host_port.rsplit('@').next().unwrap_or("");
    if host_port.is_empty() || host_port.contains(char::is_whitespace) {
        return Err(SpecError::new(
            "nats.url",
            format!("`{url}` has no host: use nats://host:port"),
        ));
    }
    let stream = nats.stream.trim();
    let name_ok = !stream.is_empty()
        && stream.len() <= 255
        && stream
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(SpecError::new(
            "nats.stream",
            format!("`{stream}` is not a stream name: use letters, digits, `-` or `_`"),
        ));
    }
    if nats.subjects.is_empty() {
        return Err(SpecError::new(
            "nats.subjects",
            "give at least one subject, e.g. `orders.>`",
        ));
    }
    for subject in &nats.subjects {
        let tokens: Vec<&str> = subject.split('.').collect();
        let bad = subject.is_empty()
            || subject.contains(char::is_whitespace)
            || tokens.iter().any(|t| t.is_empty())
            || tokens.iter().enumerate().any(|(i, t)| {
                (t.contains('>') && (*t != ">" || i + 1 != tokens.len()))
                    || (t.contains('*') && *t != "*")
            });
        if bad {
            return Err(SpecError::new(
                "nats.subjects",
                format!("`{subject}` is not a subject: use dot-separated tokens, `*` for one token, `>` for the rest"),
            ));
        }
    }
    let max_deliver = nats.max_deliver();
    if !(1..=1000).contains(&max_deliver) {
        return Err(SpecError::new(
            "nats.max_deliver",
            format!("{max_deliver} is out of range: use 1 to 1000"),
        ));
    }
    let concurrency = nats.concurrency();
    if !(1..=256).contains(&concurrency) {
        return Err(SpecError::new(
            "nats.concurrency",
            format!("{concurrency} is out of range: use 1 to 256"),
        ));
    }
    if let Some(wait) = nats.ack_wait {
        if wait.0 < Duration::from_secs(1) || wait.0 > Duration::from_secs(12 * 3600) {
            return Err(SpecError::new(
                "nats.ack_wait",
                format!("{wait} is out of range: use 1s to 12h"),
            ));
        }
    }
    Ok(NatsSpec {
        url: url.to_string(),
        stream: stream.to_string(),
        subjects: nats.subjects.clone(),
        max_deliver: Some(max_deliver),
        ack_wait: nats.ack_wait,
        concurrency: Some(concurrency),
    })
}

/// A trigger as the platform stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerRecord {
    /// The trigger's name.
    pub name: String,
    /// Its validated spec.
    pub spec: TriggerSpec,
    /// A new random id at each create or replace: it seeds the call ids of a cron trigger's
    /// ticks, so that a replaced trigger never shares ids with its predecessor.
    pub generation: Uuid,
    /// When it was created or last replaced.
    pub created_at: DateTime<Utc>,
    /// The last cron tick handled (fired or skipped); ticks up to it never fire again.
    pub last_tick: Option<DateTime<Utc>>,
}

/// How a trigger's source is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerState {
    /// A cron trigger waiting for its next tick.
    Scheduled,
    /// A broker trigger (re)connecting; `last_error` says what failed last.
    Connecting,
    /// A broker trigger connected and consuming.
    Connected,
    /// A trigger that cannot run (its schedule has no next tick, say).
    Error,
    /// Stopped (the daemon is shutting down).
    Stopped,
}

impl TriggerState {
    /// The state as shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerState::Scheduled => "scheduled",
            TriggerState::Connecting => "connecting",
            TriggerState::Connected => "connected",
            TriggerState::Error => "error",
            TriggerState::Stopped => "stopped",
        }
    }
}

/// A trigger as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TriggerView {
    /// The trigger's name.
    pub name: String,
    /// `cron` or `nats`.
    pub kind: TriggerKind,
    /// The function called.
    pub function: String,
    /// The cron schedule, with its defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<CronSpec>,
    /// The NATS subscription, with its defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsSpec>,
    /// The JSON body of each cron call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
    /// The text body of each cron call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// When the trigger was created or last replaced.
    pub created_at: DateTime<Utc>,
    /// How its source is doing.
    pub state: TriggerState,
    /// The last error of its source, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The last cron tick handled (fired or skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_tick: Option<DateTime<Utc>>,
    /// The next cron tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_tick: Option<DateTime<Utc>>,
}

impl TriggerView {
    /// The view of `record`, in `state`.
    pub fn new(record: &TriggerRecord, state: TriggerState, last_error: Option<String>) -> Self {
        let spec = &record.spec;
        let next_tick = spec
            .cron
            .as_ref()
            .and_then(|cron| Schedule::parse(cron).ok())
            .and_then(|s| {
                s.next_after(
                    record
                        .last_tick
                        .unwrap_or(record.created_at)
                        .max(Utc::now()),
                )
            });
        TriggerView {
            name: record.name.clone(),
            kind: spec.kind(),
            function: spec.function.clone(),
            cron: spec.cron.clone(),
            nats: spec.nats.clone(),
            payload: spec.payload.clone(),
            body: spec.body.clone(),
            created_at: record.created_at,
            state,
            last_error,
            last_tick: record.last_tick,
            next_tick,
        }
    }
}

/// A parsed cron schedule in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    tz: chrono_tz::Tz,
    missed: MissedTicks,
}

impl Schedule {
    /// Parses `spec`: the expression (five fields, or six with seconds, or a nickname such
    /// as `@hourly`) and the IANA time zone (default `UTC`).
    pub fn parse(spec: &CronSpec) -> Result<Schedule, SpecError> {
        let text = spec.schedule.trim();
        let fields = text.split_whitespace().count();
        if !text.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(SpecError::new(
                "cron.schedule",
                format!("`{text}` is not a cron expression: use five fields (minute hour day month weekday), six with seconds first, or @hourly, @daily, ..."),
            ));
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(text)
            .map_err(|e| {
                SpecError::new(
                    "cron.schedule",
                    format!("`{text}` is not a cron expression: {e}"),
                )
            })?;
        let zone = spec.timezone.as_deref().unwrap_or("UTC").trim();
        let tz: chrono_tz::Tz = zone.parse().map_err(|_| {
            SpecError::new(
                "cron.timezone",
                format!("`{zone}` is not an IANA time zone (such as `Europe/Paris` or `UTC`)"),
            )
        })?;
        Ok(Schedule {
            cron,
            tz,
            missed: spec.missed.unwrap_or_default(),
        })
    }

    /// The time zone's IANA name.
    pub fn timezone(&self) -> &'static str {
        self.tz.name()
    }

    /// The missed-tick policy.
    pub fn missed(&self) -> MissedTicks {
        self.missed
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = whole_second(t).with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }

    /// The latest tick in `(after, until]`.
    pub fn latest_in(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if until <= after {
            return None;
        }
        let local = whole_second(until).with_timezone(&self.tz);
        let latest = self
            .cron
            .find_previous_occurrence(&local, true)
            .ok()?
            .with_timezone(&Utc);
        (latest > after).then_some(latest)
    }
}

/// `t` without its fraction of a second (ticks fall on whole seconds).
fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// What the cron runner does about one trigger at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickPlan {
    /// Fire a call for this tick and record it as the last one.
    Fire(DateTime<Utc>),
    /// Record this tick as the last one without firing (missed ticks, `skip` policy).
    Skip(DateTime<Utc>),
    /// Nothing is due; the next tick is at this time.
    WaitUntil(DateTime<Utc>),
    /// The schedule has no further tick.
    Never,
}

/// Decides what to do about a trigger whose last handled tick is `last_tick`, for a
/// daemon that started at `boot`, at `now`.
///
/// Ticks due since `last_tick` are never fired one by one: only the latest fires. Ticks at
/// or before `boot` passed while the daemon was down: with [`MissedTicks::RunOnce`] the
/// latest of them fires (once), with [`MissedTicks::Skip`] none does. A tick after `boot`
/// fires even if the runner is late for it.
pub fn plan_tick(
    schedule: &Schedule,
    last_tick: DateTime<Utc>,
    boot: DateTime<Utc>,
    now: DateTime<Utc>,
) -> TickPlan {
    match schedule.latest_in(last_tick, now) {
        Some(latest) if latest <= boot && schedule.missed == MissedTicks::Skip => {
            TickPlan::Skip(latest)
        }
        Some(latest) => TickPlan::Fire(latest),
        None => match schedule.next_after(last_tick.max(now)) {
            Some(next) => TickPlan::WaitUntil(next),
            None => TickPlan::Never,
        },
    }
}

/// The namespace of the call ids of cron ticks.
const TICK_NAMESPACE: Uuid = Uuid::from_u128(0x5c1f_f0c7_7a1e_4b9e_9d2f_8e61_c3a0_0b17);

/// The call id of one tick of a cron trigger: the same trigger generation and tick always
/// give the same id, so a tick fired twice (a crash between two steps) is one call. Like a
/// UUIDv7, it starts with the tick's unix time in milliseconds, so ids sort by time; the
/// rest is a SHA-1 of the trigger's name, generation and tick (a version 8 UUID).
pub fn tick_call_id(trigger: &str, generation: Uuid, tick: DateTime<Utc>) -> Uuid {
    let ms = u64::try_from(tick.timestamp_millis()).unwrap_or(0);
    let hash = Uuid::new_v5(
        &TICK_NAMESPACE,
        format!("{trigger}\n{generation}\n{ms}").as_bytes(),
    );
    let mut bytes = *hash.as_bytes();
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The tick time encoded in a cron call id made by [`tick_call_id`].
pub fn tick_of_call_id(id: Uuid) -> Option<DateTime<Utc>> {
    if id.get_version_num() != 8 {
        return None;
    }
    let b = id.as_bytes();
    let mut ms = [0u8; 8];
    ms[2..].copy_from_slice(&b[..6]);
    DateTime::from_timestamp_millis(i64::try_from(u64::from_be_bytes(ms)).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    fn schedule(expr: &str, tz: &str, missed: MissedTicks) -> Schedule {
        Schedule::parse(&CronSpec {
            schedule: expr.into(),
            timezone: Some(tz.into()),
            missed: Some(missed),
        })
        .expect("valid schedule")
    }

    fn spec(json: serde_json::Value) -> Result<TriggerSpec, String> {
        let spec: TriggerSpec = serde_json::from_value(json).map_err(|e| e.to_string())?;
        spec.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn ticks_are_read_in_the_time_zone() {
        let s = schedule("0 9 * * *", "Europe/Paris", MissedTicks::RunOnce);
        // Winter: Paris is UTC+1.
        assert_eq!(
            s.next_after(utc("2026-01-10T12:00:00Z")),
            Some(utc("2026-01-11T08:00:00Z"))
        );
        // Summer: UTC+2.
        assert_eq!(
            s.next_after(utc("2026-07-10T12:00:00Z")),
            Some(utc("2026-07-11T07:00:00Z"))
        );
        let ny = schedule("30 17 * * MON-FRI", "America/New_York", MissedTicks::Skip);
        // Friday 2026-11-20 after 17:30 in New York: next is Monday.
        assert_eq!(
            ny.next_after(utc("2026-11-20T23:00:00Z")),
            Some(utc("2026-11-23T22:30:00Z"))
        );
    }

    #[test]
    fn daylight_saving_changes_neither_skip_nor_double_a_day() {
        let s = schedule("30 2 * * *", "Europe/Paris", MissedTicks::RunOnce);
        let ticks = |from: &str, n: usize| {
            let mut t = utc(from);
            (0..n)
                .map(|_| {
                    t = s.next_after(t).expect("a next tick");
                    t
                })
                .collect::<Vec<_>>()
        };
        // 2026-03-29: Paris springs forward at 02:00 to 03:00, so 02:30 does not exist that
        // day: the tick comes at 03:00 CEST (01:00 UTC), once.
        assert_eq!(
            ticks("2026-03-27T12:00:00Z", 3),
            vec![
                utc("2026-03-28T01:30:00Z"),
                utc("2026-03-29T01:00:00Z"),
                utc("2026-03-30T00:30:00Z"),
            ]
        );
        // 2026-10-25: Paris falls back at 03:00 to 02:00, so 02:30 happens twice: the tick
        // fires once, at the first (CEST, 00:30 UTC).
        assert_eq!(
            ticks("2026-10-24T12:00:00Z", 2),
            vec![utc("2026-10-25T00:30:00Z"), utc("2026-10-26T01:30:00Z")]
        );
        // An hourly schedule in UTC is unaffected.
        let hourly = schedule("@hourly", "UTC", MissedTicks::RunOnce);
        assert_eq!(
            hourly.next_after(utc("2026-03-29T01:10:00Z")),
            Some(utc("2026-03-29T02:00:00Z"))
        );
    }

    #[test]
    fn seconds_are_an_optional_first_field() {
        let s = schedule("*/2 * * * * *", "UTC", MissedTicks::RunOnce);
        assert_eq!(
            s.next_after(utc("2026-11-22T10:00:00Z")),
            Some(utc("2026-11-22T10:00:02Z"))
        );
        assert_eq!(
            s.latest_in(utc("2026-11-22T10:00:00Z"), utc("2026-11-22T10:00:05.500Z")),
            Some(utc("2026-11-22T10:00:04Z"))
        );
        assert_eq!(
            s.latest_in(utc("2026-11-22T10:00:04Z"), utc("2026-11-22T10:00:05.500Z")),
            None,
            "the bound after which is excluded"
        );
    }

    #[test]
    fn a_due_tick_fires_and_only_the_latest_of_several() {
        let s = schedule("* * * * *", "UTC", MissedTicks::RunOnce);
        let boot = utc("2026-11-22T10:00:00Z");
        let last = utc("2026-11-22T10:00:00Z");
        assert_eq!(
            plan_tick(&s, last, boot, utc("2026-11-22T10:00:30Z")),
            TickPlan::WaitUntil(utc("2026-11-22T10:01:00Z"))
        );
        assert_eq!(
            plan_tick(&s, last, boot, utc("2026-11-22T10:01:00.003Z")),
            TickPlan::Fire(utc("2026-11-22T10:01:00Z"))
        );
        // A late runner (after boot) coalesces: the latest fires, earlier ones never do.
        assert_eq!(
            plan_tick(&s, last, boot, utc("2026-11-22T10:03:10Z")),
            TickPlan::Fire(utc("2026-11-22T10:03:00Z"))
        );
    }

    #[test]
    fn missed_ticks_run_once_or_are_skipped() {
        let last = utc("2026-11-22T10:00:00Z");
        let boot = utc("2026-11-22T12:30:10Z");
        let now = utc("2026-11-22T12:30:10.050Z");
        let once = schedule("0 * * * *", "UTC", MissedTicks::RunOnce);
        // Down from before 11:00 to 12:30: 11:00 and 12:00 were missed; one call, for 12:00.
        assert_eq!(
            plan_tick(&once, last, boot, now),
            TickPlan::Fire(utc("2026-11-22T12:00:00Z"))
        );
        // Then the schedule resumes.
        assert_eq!(
            plan_tick(&once, utc("2026-11-22T12:00:00Z"), boot, now),
            TickPlan::WaitUntil(utc("2026-11-22T13:00:00Z"))
        );
        let skip = schedule("0 * * * *", "UTC", MissedTicks::Skip);
        assert_eq!(
            plan_tick(&skip, last, boot, now),
            TickPlan::Skip(utc("2026-11-22T12:00:00Z"))
        );
        assert_eq!(
            plan_tick(
                &skip,
                utc("2026-11-22T12:00:00Z"),
                boot,
                utc("2026-11-22T13:00:00.010Z")
            ),
            TickPlan::Fire(utc("2026-11-22T13:00:00Z")),
            "a tick after boot fires under skip too"
        );
    }

    #[test]
    fn tick_ids_are_deterministic_time_ordered_and_distinct() {
        let g = Uuid::from_u128(7);
        let t1 = Utc
            .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
            .single()
            .expect("t");
        let t2 = Utc
            .with_ymd_and_hms(2026, 11, 22, 10, 0, 2)
            .single()
            .expect("t");
        let a = tick_call_id("nightly", g, t1);
        assert_eq!(a, tick_call_id("nightly", g, t1));
        assert_ne!(a, tick_call_id("nightly", Uuid::from_u128(8), t1));
        assert_ne!(a, tick_call_id("other", g, t1));
        let b = tick_call_id("nightly", g, t2);
        assert!(b > a, "ids sort by tick time");
        assert_eq!(a.get_version_num(), 8);
        assert_eq!(tick_of_call_id(a), Some(t1));
        assert_eq!(tick_of_call_id(b), Some(t2));
        assert_eq!(tick_of_call_id(Uuid::now_v7()), None);
    }

    #[test]
    fn specs_validate_with_defaults_and_typed_errors() {
        let valid = spec(serde_json::json!({
            "function": "hello",
            "cron": {"schedule": " */5 * * * * "},
            "payload": {"name": "Ann"}
        }))
        .expect("valid");
        let cron = valid.cron.clone().expect("cron");
        assert_eq!(cron.schedule, "*/5 * * * *");
        assert_eq!(cron.timezone.as_deref(), Some("UTC"));
        assert_eq!(cron.missed, Some(MissedTicks::RunOnce));
        assert_eq!(valid.kind(), TriggerKind::Cron);
        assert_eq!(
            valid.cron_body(),
            (Some("application/json"), br#"{"name":"Ann"}"#.to_vec())
        );

        // Rare is not never: leap days, and leap days that fall on a Monday.
        for rare in ["0 0 29 2 *", "0 0 29 2 +MON", "0 0 L 2 *"] {
            spec(serde_json::json!({"function": "f", "cron": {"schedule": rare}})).expect(rare);
        }
        let message =
            spec(serde_json::json!({"function": "f", "cron": {"schedule": "0 0 30 2 *"}}))
                .expect_err("February 30th");
        assert!(message.contains("never fires"), "{message}");

        let nats = spec(serde_json::json!({
            "function": "worker",
            "nats": {"url": "nats://127.0.0.1:4222", "stream": "VOTES", "subjects": ["votes.>"]}
        }))
        .expect("valid");
        let n = nats.nats.clone().expect("nats");
        assert_eq!(n.max_deliver, Some(DEFAULT_MAX_DELIVER));
        assert_eq!(n.ack_wait(Duration::from_secs(10)), Duration::from_secs(40));
        assert_eq!(nats.kind(), TriggerKind::Nats);

        for (json, field) in [
            (
                serde_json::json!({"function": "f", "cron": {"schedule": "61 * * * *"}}),
                "cron.schedule",
            ),
            (
                serde_json::json!({"function": "f", "cron": {"schedule": "every day"}}),
                "cron.schedule",
            ),
            (
                serde_json::json!({"function": "f", "cron": {"schedule": "0 0 30 2 *"}}),
                "cron.schedule",
            ),
            (
                serde_json::json!({"function": "f", "cron": {"schedule": "0 0 31 4,6,9,11 *", "timezone": "Europe/Paris"}}),
                "cron.schedule",
            ),
            (
                serde_json::json!({"function": "f", "cron": {"schedule": "* * * * *", "timezone": "Mars/Olympus"}}),
                "cron.timezone",
            ),
            (serde_json::json!({"function": "f"}), "cron"),
            (
                serde_json::json!({"function": "bad name", "cron": {"schedule": "* * * * *"}}),
                "function",
            ),
            (
                serde_json::json!({"function": "f", "cron": {"schedule": "* * * * *"}, "payload": 1, "body": "x"}),
                "payload",
            ),
            (
                serde_json::json!({"function": "f", "nats": {"url": "http://x:4222", "stream": "S", "subjects": ["a"]}}),
                "nats.url",
            ),
            (
                serde_json::json!({"function": "f", "nats": {"url": "nats://x:4222", "stream": "S.x", "subjects": ["a"]}}),
                "nats.stream",
            ),
            (
                serde_json::json!({"function": "f", "nats": {"url": "nats://x:4222", "stream": "S", "subjects": []}}),
                "nats.subjects",
            ),
            (
                serde_json::json!({"function": "f", "nats": {"url": "nats://x:4222", "stream": "S", "subjects": ["a.>.b"]}}),
                "nats.subjects",
            ),
            (
                serde_json::json!({"function": "f", "nats": {"url": "nats://x:4222", "stream": "S", "subjects": ["a"]}, "body": "x"}),
                "body",
            ),
        ] {
            let err = serde_json::from_value::<TriggerSpec>(json.clone())
                .expect("parses")
                .validate()
                .expect_err("refused");
            assert_eq!(err.field, field, "{json}: {err}");
        }
        assert!(spec(
            serde_json::json!({"function": "f", "cron": {"schedule": "* * * * *", "missed": "all"}})
        )
        .is_err());
        assert!(spec(
            serde_json::json!({"function": "f", "cron": {"schedule": "* * * * *"}, "extra": 1})
        )
        .is_err());
        assert_eq!(
            parse_trigger_name("nightly-report").as_deref(),
            Ok("nightly-report")
        );
        assert_eq!(
            parse_trigger_name("a b").map_err(|e| e.field),
            Err("name".to_string())
        );
    }
}
