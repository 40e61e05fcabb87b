//! `skiff.toml`: a function's name and its [`FunctionSpec`], whose fields the file takes
//! as they are, so that a field added to the spec is a key of the file too.

use crate::output;
use anyhow::{anyhow, bail};
use serde::de::value::{MapAccessDeserializer, StrDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use skiff_core::FunctionSpec;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

/// The file `skiff deploy` reads in the function's folder.
pub const MANIFEST_FILE: &str = "skiff.toml";

/// The one key of a `skiff.toml` that is not a field of the spec.
const NAME_KEY: &str = "name";

/// A `skiff.toml`: the function's name and any field of a [`FunctionSpec`]. Any other key
/// is refused, naming the keys there are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    /// The function's name.
    pub name: Option<String>,
    /// The spec; its `image` is empty when the file sets none.
    pub spec: FunctionSpec,
}

impl<'de> Deserialize<'de> for Manifest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ManifestVisitor)
    }
}

struct ManifestVisitor;

impl<'de> Visitor<'de> for ManifestVisitor {
    type Value = Manifest;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of a function's settings")
    }

    /// Reads the table as a [`FunctionSpec`], taking `name` aside on the way. Keys and
    /// values are read in the file's order by the underlying deserializer, so every error
    /// keeps its position.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Manifest, A::Error> {
        let mut entries = SpecEntries {
            map,
            name: None,
            image_seen: false,
            empty_image_next: false,
        };
        let spec = FunctionSpec::deserialize(MapAccessDeserializer::new(&mut entries))?;
        Ok(Manifest {
            name: entries.name,
            spec,
        })
    }
}

/// The entries of a `skiff.toml` as a spec sees them: without `name`, and with an empty
/// `image` when the file sets none (the image may come from `--image`).
struct SpecEntries<A> {
    map: A,
    name: Option<String>,
    image_seen: bool,
    /// The next value asked for is the empty `image` added at the end.
    empty_image_next: bool,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for SpecEntries<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        // The probe takes the spec's seed only for a key of the spec.
        let mut seed = Some(seed);
        loop {
            match self.map.next_key_seed(KeyProbe(&mut seed))? {
                Some(Probed::Name) => self.name = self.map.next_value::<Option<String>>()?,
                Some(Probed::Field { key, image }) => {
                    self.image_seen |= image;
                    return Ok(Some(key));
                }
                None => break,
            }
        }
        match seed {
            Some(seed) if !self.image_seen => {
                self.image_seen = true;
                self.empty_image_next = true;
                seed.deserialize(StrDeserializer::<A::Error>::new("image"))
                    .map(Some)
            }
            _ => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        if std::mem::take(&mut self.empty_image_next) {
            return seed.deserialize(StrDeserializer::<A::Error>::new(""));
        }
        self.map.next_value_seed(seed)
    }
}

/// Reads a key of the file: `name` is set aside, any other key is read by the spec's own
/// seed (taken from the `Option`). It runs inside the underlying deserializer, which gives
/// its errors the key's position.
struct KeyProbe<'a, K>(&'a mut Option<K>);

enum Probed<V> {
    Name,
    Field { key: V, image: bool },
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeyProbe<'_, K> {
    type Value = Probed<K::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let key = String::deserialize(deserializer)?;
        if key == NAME_KEY {
            return Ok(Probed::Name);
        }
        let seed = self
            .0
            .take()
            .ok_or_else(|| de::Error::custom("a key was read after the spec's"))?;
        let field = seed
            .deserialize(StrDeserializer::<KeyError>::new(&key))
            .map_err(|err| match err {
                KeyError::Unknown { field, expected } => {
                    de::Error::unknown_field(&field, with_name(expected))
                }
                KeyError::Other(message) => de::Error::custom(message),
            })?;
        Ok(Probed::Field {
            key: field,
            image: key == "image",
        })
    }
}

/// The keys a `skiff.toml` takes: `name`, then the spec's fields (`expected`, which is
/// always the spec's list).
fn with_name(expected: &'static [&'static str]) -> &'static [&'static str] {
    static KEYS: OnceLock<Vec<&'static str>> = OnceLock::new();
    KEYS.get_or_init(|| {
        std::iter::once(NAME_KEY)
            .chain(expected.iter().copied())
            .collect()
    })
}

/// Why the spec refused a key: an unknown one is told again with `name` among the keys.
#[derive(Debug)]
enum KeyError {
    Unknown {
        field: String,
        expected: &'static [&'static str],
    },
    Other(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Unknown { field, .. } => write!(f, "unknown field `{field}`"),
            KeyError::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for KeyError {}

impl de::Error for KeyError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        KeyError::Other(message.to_string())
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        KeyError::Unknown {
            field: field.to_string(),
            expected,
        }
    }
}

/// Reads `text`, the content of the manifest at `path`. Errors are one line naming the file,
/// the problem (an unknown key is named) and where it is.
pub fn parse_manifest(text: &str, path: &Path) -> anyhow::Result<Manifest> {
    toml::from_str(text).map_err(|err| {
        let message = output::one_line(err.message());
        match err.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                anyhow!(
                    "{}: {message} (line {line}, column {column})",
                    path.display()
                )
            }
            None => anyhow!("{}: {message}", path.display()),
        }
    })
}

/// Reads `dir/skiff.toml` if there is one (an empty `dir` is the current folder).
pub fn load_manifest(dir: &Path) -> anyhow::Result<Option<Manifest>> {
    // An empty `dir` is the current folder (and messages then say just `skiff.toml`).
    let path = dir.join(MANIFEST_FILE);
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_manifest(&text, &path).map(Some),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if dir.is_dir() {
                Ok(None)
            } else {
                bail!("{} is not a folder", dir.display())
            }
        }
        Err(err) => bail!("cannot read {}: {err}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> anyhow::Result<Manifest> {
        parse_manifest(text, Path::new("skiff.toml"))
    }

    #[test]
    fn the_name_is_set_aside_and_the_rest_is_the_spec() {
        let m = manifest(
            "port = 9000
name = \"web\"
image = \"img\"
concurrency = 4\n",
        )
        .expect("valid");
        assert_eq!(m.name.as_deref(), Some("web"));
        assert_eq!(
            m.spec,
            FunctionSpec {
                image: "img".into(),
                port: Some(9000),
                concurrency: Some(4),
                ..FunctionSpec::default()
            }
        );
        let m = manifest("memory = \"64Mi\"").expect("no name, no image");
        assert_eq!(m.name, None);
        assert_eq!(m.spec.image, "");
        assert_eq!(manifest("").expect("empty"), Manifest::default());
    }

    #[test]
    fn an_unknown_key_is_told_with_every_key_there_is() {
        let err = manifest("name = \"x\"\nimage = \"i\"\nnmae = \"y\"\n").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "skiff.toml: unknown field `nmae`, expected one of `name`, `image`, `contract`, \
             `memory`, `cpus`, `pids`, `tmp_size`, `timeout`, `max_wait`, `env`, `secrets`, `port`, \
             `readiness_path`, `startup_timeout`, `concurrency`, `min_instances`, \
             `max_instances`, `idle_timeout`, `autoscale_window`, `target_utilization`, \
             `handler`, `retries`, `max_event_age`, `volumes`, `public`, `callees` (line 3, column 1)"
        );
    }

    #[test]
    fn errors_keep_their_position() {
        let err = manifest("image = \"i\"\nname = 5\n").expect_err("a number");
        assert_eq!(
            err.to_string(),
            "skiff.toml: invalid type: integer `5`, expected a string (line 2, column 8)"
        );
        let err = manifest("name = \"x\"\n\n  timeout = \"soon\"\n").expect_err("bad duration");
        let text = err.to_string();
        assert!(text.contains("is not a duration"), "{text}");
        assert!(text.ends_with("(line 3, column 13)"), "{text}");
    }
}
