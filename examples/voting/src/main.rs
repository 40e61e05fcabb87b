//! The voting example: three functions in one image, `skiff/voting:latest`, each picking its
//! role from `VOTING_ROLE`:
//!
//! | role | contract | what it does |
//! | --- | --- | --- |
//! | `vote` | `http` | `POST /` with `{"choice":"cats"}` (or a form): checks the choice, queues an async call of the worker through the function API, answers 202 with its call id; `GET /` shows a form |
//! | `worker` | `exec` | reads one vote on stdin and adds it to the tally in the volume (`/data`) |
//! | `result` | `exec` | prints the tally, e.g. `{"cats":3,"dogs":2}` (volume mounted read-only) |
//!
//! Environment: `VOTING_CHOICES` (default `cats,dogs`), `VOTING_DATA` (default `/data`),
//! `VOTING_WORKER` (the worker's function name, default `worker`), `PORT` (vote); and from
//! skiff, `SKIFF_API_URL` and `SKIFF_TOKEN` (vote), `SKIFF_CALL_ID` (worker).

mod tally;
mod vote;

use serde::Deserialize;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// What a vote says.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ballot {
    /// The choice voted for.
    pub choice: String,
}

/// The choices one may vote for.
pub fn choices() -> Vec<String> {
    std::env::var("VOTING_CHOICES")
        .unwrap_or_else(|_| "cats,dogs".to_string())
        .split(',')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

/// Reads a ballot from a JSON body (`{"choice":"cats"}`) or a form (`choice=cats`) and
/// checks its choice.
pub fn parse_ballot(body: &[u8], choices: &[String]) -> Result<Ballot, String> {
    let ballot = match serde_json::from_slice::<Ballot>(body) {
        Ok(ballot) => ballot,
        Err(json_err) => {
            let text = String::from_utf8_lossy(body);
            let form = text
                .trim()
                .split('&')
                .find_map(|pair| pair.strip_prefix("choice="));
            match form {
                Some(choice) if !choice.is_empty() => Ballot {
                    choice: choice.to_string(),
                },
                _ => return Err(format!("a vote is {{\"choice\": \"...\"}}: {json_err}")),
            }
        }
    };
    if choices.contains(&ballot.choice) {
        Ok(ballot)
    } else {
        Err(format!(
            "`{}` is not a choice: vote for one of {}",
            ballot.choice,
            choices.join(", ")
        ))
    }
}

fn data_dir() -> PathBuf {
    PathBuf::from(std::env::var("VOTING_DATA").unwrap_or_else(|_| "/data".to_string()))
}

/// The tally as the result function shows it: every choice, with 0 for those not voted for.
fn result_json(counts: &std::collections::BTreeMap<String, u64>) -> serde_json::Value {
    let mut shown = serde_json::Map::new();
    for choice in choices() {
        shown.insert(choice, 0.into());
    }
    for (choice, n) in counts {
        shown.insert(choice.clone(), (*n).into());
    }
    serde_json::Value::Object(shown)
}

fn worker() -> ExitCode {
    let mut body = Vec::new();
    if let Err(err) = std::io::stdin().read_to_end(&mut body) {
        eprintln!("worker: cannot read the vote: {err}");
        return ExitCode::FAILURE;
    }
    let ballot = match parse_ballot(&body, &choices()) {
        Ok(ballot) => ballot,
        Err(err) => {
            eprintln!("worker: {err}");
            return ExitCode::from(2);
        }
    };
    let call = std::env::var("SKIFF_CALL_ID").ok();
    match tally::add(&data_dir(), &ballot.choice, call.as_deref()) {
        Ok(tally) => {
            eprintln!("worker: counted a vote for {}", ballot.choice);
            let _ = writeln!(std::io::stdout(), "{}", result_json(&tally.counts));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("worker: {err}");
            ExitCode::FAILURE
        }
    }
}

fn result() -> ExitCode {
    match tally::read(&data_dir()) {
        Ok(tally) => {
            let _ = writeln!(std::io::stdout(), "{}", result_json(&tally.counts));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("result: {err}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    match std::env::var("VOTING_ROLE").as_deref() {
        Ok("vote") => vote::main(),
        Ok("worker") => worker(),
        Ok("result") => result(),
        _ => {
            eprintln!("voting: set VOTING_ROLE to vote, worker or result");
            ExitCode::from(64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ballots_are_json_or_forms_for_a_known_choice() {
        let choices = vec!["cats".to_string(), "dogs".to_string()];
        assert_eq!(
            parse_ballot(br#"{"choice":"cats"}"#, &choices)
                .expect("json")
                .choice,
            "cats"
        );
        assert_eq!(
            parse_ballot(b"choice=dogs", &choices).expect("form").choice,
            "dogs"
        );
        assert!(parse_ballot(br#"{"choice":"birds"}"#, &choices)
            .expect_err("unknown")
            .contains("not a choice"));
        assert!(parse_ballot(b"", &choices).is_err());
        assert!(parse_ballot(br#"{"choice":"cats","extra":1}"#, &choices).is_err());
    }
}
