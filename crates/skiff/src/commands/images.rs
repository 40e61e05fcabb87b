//! `skiff pull` and `skiff push`: the daemon moves an image between its engine and a
//! registry, and the CLI shows the steps: on a terminal, a bar per layer of a pull and a
//! status line for a push (the engine does not say which layer a push step is about); a
//! line per new status otherwise.

use crate::client::{ApiClient, ClientError};
use crate::output;
use anyhow::anyhow;
use futures::{Stream, StreamExt};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use skiff_core::api::{ImageDone, ImageEvent, ImageStep};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;

/// How long the CLI waits for the next line of a pull or push: the daemon ends one without
/// a step for 120 s itself, and sends keep-alive lines meanwhile.
const QUIET_LIMIT: std::time::Duration = std::time::Duration::from_secs(150);

/// Arguments of `skiff pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// The image (`REGISTRY/REPOSITORY[:TAG]`, or `...@sha256:...`)
    pub image: String,
}

/// Arguments of `skiff push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// An image on the daemon's engine
    pub image: String,
    /// The name to push it as (`REGISTRY/REPOSITORY[:TAG]`) [default: the image's own]
    #[arg(long, value_name = "REFERENCE")]
    pub to: Option<String>,
}

/// Runs `skiff pull`.
pub async fn pull(client: &ApiClient, args: PullArgs, json: bool) -> anyhow::Result<ExitCode> {
    let done = pull_with_progress(client, &args.image, None).await?;
    finish("pulled", &done, json)
}

/// Runs `skiff push`.
pub async fn push(client: &ApiClient, args: PushArgs, json: bool) -> anyhow::Result<ExitCode> {
    let events = client.push_image(&args.image, args.to.as_deref()).await?;
    let shown = args.to.as_deref().unwrap_or(&args.image);
    let done = follow(events, &format!("push {shown}"), None).await?;
    finish("pushed", &done, json)
}

/// Has the daemon pull `image`, showing the steps on stderr, after `heading` if given
/// (once a step comes: a pull that fails at once says only its error); what it pulled.
pub async fn pull_with_progress(
    client: &ApiClient,
    image: &str,
    heading: Option<&str>,
) -> anyhow::Result<ImageDone> {
    let events = client.pull_image(image).await?;
    follow(events, &format!("pull {image}"), heading).await
}

fn finish(verb: &str, done: &ImageDone, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::print_json(done)?;
    } else {
        let digest = done
            .digests
            .first()
            .map_or(done.id.as_str(), String::as_str);
        output::print_line(&format!("{verb} {} ({digest})", done.image))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Shows each step of `events` until its `done` line, which it returns; its `error` line
/// is the error.
async fn follow(
    events: impl Stream<Item = Result<ImageEvent, ClientError>>,
    what: &str,
    mut heading: Option<&str>,
) -> anyhow::Result<ImageDone> {
    let mut view = if std::io::stderr().is_terminal() {
        View::Bars(Bars::new())
    } else {
        View::Lines(Lines::default())
    };
    let mut events = std::pin::pin!(events);
    loop {
        // The daemon sends a step, or a blank keep-alive line every 15 s.
        let Ok(event) = tokio::time::timeout(QUIET_LIMIT, events.next()).await else {
            view.finish();
            return Err(anyhow!(
                "{what}: no word from the daemon for {}s",
                QUIET_LIMIT.as_secs()
            ));
        };
        let Some(event) = event else {
            break;
        };
        match event? {
            ImageEvent::Progress(step) => {
                if let Some(heading) = heading.take() {
                    eprintln!("{heading}");
                }
                view.step(what, &step);
            }
            ImageEvent::Done(done) => {
                view.finish();
                return Ok(done);
            }
            ImageEvent::Error(error) => {
                view.finish();
                // The message names the image and what was done to it.
                return Err(anyhow!(
                    "{} ({})",
                    output::one_line(&error.message),
                    error.code
                ));
            }
        }
    }
    view.finish();
    Err(anyhow!(
        "{what}: the daemon's answer ended before the image was done"
    ))
}

/// How the steps are shown.
enum View {
    Bars(Bars),
    Lines(Lines),
}

impl View {
    fn step(&mut self, what: &str, step: &ImageStep) {
        if step.status.trim().is_empty() {
            return;
        }
        // The engine puts a tag in the id of a step about the image ("v1: Pulling from
        // app"): only a layer's digest makes a bar.
        let folded;
        let step = match &step.layer {
            Some(id) if !is_layer(id) => {
                folded = ImageStep {
                    layer: None,
                    status: format!("{id}: {}", step.status),
                    current: None,
                    total: None,
                };
                &folded
            }
            _ => step,
        };
        match self {
            View::Bars(bars) => bars.step(step),
            View::Lines(lines) => {
                if let Some(line) = lines.step(step) {
                    eprintln!("{what}: {line}");
                }
            }
        }
    }

    fn finish(&mut self) {
        if let View::Bars(bars) = self {
            bars.finish();
        }
    }
}

/// A bar per layer, and one for the image's own messages.
struct Bars {
    all: MultiProgress,
    layers: HashMap<String, ProgressBar>,
    image: ProgressBar,
}

impl Bars {
    fn new() -> Bars {
        let all = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let image = all.add(ProgressBar::new_spinner());
        Bars {
            all,
            layers: HashMap::new(),
            image,
        }
    }

    fn step(&mut self, step: &ImageStep) {
        let Some(layer) = &step.layer else {
            self.image.set_message(step.status.clone());
            self.image.tick();
            return;
        };
        let bar = self.layers.entry(layer.clone()).or_insert_with(|| {
            let bar = self.all.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template("{prefix} {msg:<18} [{bar:30}] {bytes}/{total_bytes}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(short(layer).to_string());
            bar
        });
        bar.set_message(step.status.clone());
        if let Some(total) = step.total {
            bar.set_length(total);
        }
        if let Some(current) = step.current {
            bar.set_position(current);
        }
        if step.status.ends_with("complete") || step.status.contains("exists") {
            if let Some(total) = bar.length() {
                bar.set_position(total);
            }
        }
    }

    fn finish(&mut self) {
        for bar in self.layers.values() {
            bar.abandon();
        }
        self.image.finish_and_clear();
    }
}

/// A line for each new status of a layer: the byte counts of `Downloading` or `Pushing`
/// come as many steps of one status, shown once.
#[derive(Default)]
struct Lines {
    last: HashMap<Option<String>, String>,
}

impl Lines {
    fn step(&mut self, step: &ImageStep) -> Option<String> {
        if self.last.get(&step.layer) == Some(&step.status) {
            return None;
        }
        self.last.insert(step.layer.clone(), step.status.clone());
        Some(match &step.layer {
            Some(layer) => format!("{}: {}", short(layer), step.status),
            None => step.status.clone(),
        })
    }
}

/// Whether a step's id is a layer's (a short hex digest), not a tag.
fn is_layer(id: &str) -> bool {
    id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit())
}

/// A layer id as Docker shows it: its first 12 characters.
fn short(layer: &str) -> &str {
    layer.get(..12).unwrap_or(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(layer: Option<&str>, status: &str, current: Option<u64>) -> ImageStep {
        ImageStep {
            layer: layer.map(str::to_string),
            status: status.to_string(),
            current,
            total: current.map(|_| 100),
        }
    }

    #[test]
    fn only_a_digest_is_a_layer_not_a_tag() {
        assert!(is_layer("0123456789ab"));
        assert!(!is_layer("v1"));
        assert!(!is_layer("latest"));
    }

    #[test]
    fn lines_show_each_status_of_a_layer_once() {
        let mut lines = Lines::default();
        let shown: Vec<String> = [
            step(None, "Pulling from hello", None),
            step(Some("0123456789abcdef"), "Pulling fs layer", None),
            step(Some("0123456789abcdef"), "Downloading", Some(10)),
            step(Some("0123456789abcdef"), "Downloading", Some(90)),
            step(Some("fedcba9876543210"), "Downloading", Some(5)),
            step(Some("0123456789abcdef"), "Pull complete", None),
            step(None, "Digest: sha256:abc", None),
        ]
        .iter()
        .filter_map(|s| lines.step(s))
        .collect();
        assert_eq!(
            shown,
            [
                "Pulling from hello",
                "0123456789ab: Pulling fs layer",
                "0123456789ab: Downloading",
                "fedcba987654: Downloading",
                "0123456789ab: Pull complete",
                "Digest: sha256:abc",
            ]
        );
    }
}
