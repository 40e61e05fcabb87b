//! Quantities as users write them: byte sizes (`128Mi`, `1G`, `65536`) and durations (`10s`,
//! `1m30s`, `250ms`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A size in bytes. Parsed from an integer (bytes) or a string with an optional suffix:
/// `Ki`, `Mi`, `Gi` (powers of 1024) or `K`, `M`, `G` (powers of 1000); `b`/`B` is allowed.
/// Printed with the largest binary suffix that divides it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// Why a size or a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(String);

impl ByteSize {
    /// `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        ByteSize(n << 20)
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let suffix = suffix.trim();
        let multiplier: u64 = match suffix.trim_end_matches(['b', 'B']) {
            "" => 1,
            "Ki" | "ki" => 1 << 10,
            "Mi" | "mi" => 1 << 20,
            "Gi" | "gi" => 1 << 30,
            "Ti" | "ti" => 1 << 40,
            "K" | "k" => 1_000,
            "M" | "m" => 1_000_000,
            "G" | "g" => 1_000_000_000,
            "T" | "t" => 1_000_000_000_000,
            _ => {
                return Err(UnitError(format!(
                    "`{s}` is not a size: use a number of bytes or a suffix such as Ki, Mi, Gi"
                )))
            }
        };
        if number.is_empty() {
            return Err(UnitError(format!("`{s}` is not a size: it has no number")));
        }
        let value: f64 = number
            .parse()
            .map_err(|_| UnitError(format!("`{s}` is not a size: bad number `{number}`")))?;
        let bytes = value * multiplier as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(UnitError(format!("`{s}` is out of range")));
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (1 << 40, "Ti"),
            (1 << 30, "Gi"),
            (1 << 20, "Mi"),
            (1 << 10, "Ki"),
        ];
        for (size, suffix) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{suffix}", self.0 / size);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A duration written the human way (`10s`, `5m`, `1h30m`, `250ms`), or as a number of
/// seconds when given as a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|err| {
                UnitError(format!(
                    "`{s}` is not a duration ({err}); write e.g. 10s, 5m, 250ms"
                ))
            })
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(f64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Seconds(s) if s.is_finite() && (0.0..1e12).contains(&s) => {
                Ok(HumanDuration(Duration::from_secs_f64(s)))
            }
            Raw::Seconds(s) => Err(serde::de::Error::custom(format!(
                "{s} is not a valid number of seconds"
            ))),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_suffixes() {
        assert_eq!("128Mi".parse::<ByteSize>(), Ok(ByteSize(128 << 20)));
        assert_eq!("1Gi".parse::<ByteSize>(), Ok(ByteSize(1 << 30)));
        assert_eq!("512M".parse::<ByteSize>(), Ok(ByteSize(512_000_000)));
        assert_eq!("64KiB".parse::<ByteSize>(), Ok(ByteSize(64 << 10)));
        assert_eq!("1.5Gi".parse::<ByteSize>(), Ok(ByteSize(3 << 29)));
        assert_eq!("4096".parse::<ByteSize>(), Ok(ByteSize(4096)));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("Mi".parse::<ByteSize>().is_err());
        assert!("-1Mi".parse::<ByteSize>().is_err());
    }

    #[test]
    fn sizes_print_with_the_largest_exact_suffix() {
        assert_eq!(ByteSize(128 << 20).to_string(), "128Mi");
        assert_eq!(ByteSize(1 << 30).to_string(), "1Gi");
        assert_eq!(ByteSize(1000).to_string(), "1000");
        assert_eq!(ByteSize(3 << 29).to_string(), "1536Mi");
    }

    #[test]
    fn sizes_deserialize_from_numbers_and_strings() {
        let from_number: ByteSize = serde_json::from_str("1048576").expect("number");
        let from_text: ByteSize = serde_json::from_str("\"1Mi\"").expect("text");
        assert_eq!(from_number, from_text);
        assert!(serde_json::from_str::<ByteSize>("\"lots\"").is_err());
    }

    #[test]
    fn durations_parse_and_print() {
        let d: HumanDuration = serde_json::from_str("\"1m30s\"").expect("text");
        assert_eq!(d.0, Duration::from_secs(90));
        let d: HumanDuration = serde_json::from_str("2.5").expect("seconds");
        assert_eq!(d.0, Duration::from_millis(2500));
        assert_eq!(HumanDuration(Duration::from_secs(10)).to_string(), "10s");
        assert!(serde_json::from_str::<HumanDuration>("\"soon\"").is_err());
        assert!(serde_json::from_str::<HumanDuration>("-3").is_err());
    }
}
