//! Invoke tokens: what lets a function call other functions through the function API.
//!
//! Each container of a function gets its own `SKIFF_TOKEN`, naming the function and the
//! container (instance) and signed by the daemon:
//! `skf2.<function>.<instance>.<base64url(HMAC-SHA256(key, "skf2.<function>.<instance>"))>`.
//! The key is 64 random bytes (HMAC-SHA256's block size) drawn when the daemon starts and
//! kept in memory only: containers never outlive the daemon (it removes them when it starts
//! and when it stops), so every token in use was minted by the running daemon, and a restart
//! revokes all earlier ones. The MAC is checked in constant time; a token says which function
//! and which of its containers is calling, and one cannot pass as another without the key.
//! Knowing the container lets skiff tie a call made through the function API to the call that
//! container is serving: its deadline and its depth carry over. A token grants invoking
//! functions and reading the call records of calls its function made, nothing else: the
//! function API serves no management route.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use skiff_core::FunctionName;

/// The prefix (and version) of every token.
const PREFIX: &str = "skf2";

/// Why a token was refused. The messages never quote the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token was given.
    #[error("this route needs `Authorization: Bearer <token>`: use $SKIFF_TOKEN")]
    Missing,
    /// The token is not of the form `skf2.<function>.<instance>.<mac>`.
    #[error("the token is malformed: use $SKIFF_TOKEN as it is")]
    Malformed,
    /// The token's signature does not match its function.
    #[error("the token is not valid for this daemon")]
    BadSignature,
    /// No random key could be drawn.
    #[error("cannot draw a random key: {0}")]
    Random(String),
}

/// The daemon's signing key.
pub struct TokenKey {
    key: [u8; 64],
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, TokenError> {
        let mut key = [0u8; 64];
        getrandom::fill(&mut key).map_err(|e| TokenError::Random(e.to_string()))?;
        Ok(TokenKey { key })
    }

    /// A key from known bytes (tests).
    pub fn from_bytes(key: [u8; 64]) -> Self {
        TokenKey { key }
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new(&self.key.into())
    }

    /// The token of `function`'s container `instance`.
    pub fn mint(&self, function: &str, instance: &str) -> String {
        let mut mac = self.mac();
        mac.update(format!("{PREFIX}.{function}.{instance}").as_bytes());
        let tag = mac.finalize().into_bytes();
        format!(
            "{PREFIX}.{function}.{instance}.{}",
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The function and container a token was minted for, if it was minted with this key.
    pub fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        // A function's full name may hold a `.` (`NS.NAME`): the instance and the tag are
        // read from the end.
        let rest = token
            .trim()
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_prefix('.'))
            .ok_or(TokenError::Malformed)?;
        let mut parts = rest.rsplitn(3, '.');
        let (Some(tag), Some(instance), Some(function)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let function = FunctionName::parse(function).map_err(|_| TokenError::Malformed)?;
        if instance.is_empty()
            || instance.len() > 64
            || !instance.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(TokenError::Malformed);
        }
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(format!("{PREFIX}.{function}.{instance}").as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        Ok(Caller {
            function,
            instance: instance.to_string(),
        })
    }
}

/// Who made a request of the function API, as its token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The calling function.
    pub function: FunctionName,
    /// The container (instance id) the request came from.
    pub instance: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> FunctionName {
        FunctionName::parse(n).expect("name")
    }

    #[test]
    fn a_token_names_its_function_and_container() {
        let key = TokenKey::from_bytes([7; 64]);
        let token = key.mint("vote", "0a1b2c3d4e5f");
        assert!(token.starts_with("skf2.vote.0a1b2c3d4e5f."), "{token}");
        assert_eq!(
            key.verify(&token),
            Ok(Caller {
                function: name("vote"),
                instance: "0a1b2c3d4e5f".to_string()
            })
        );
    }

    #[test]
    fn a_function_of_a_namespace_has_a_token_too() {
        let key = TokenKey::from_bytes([7; 64]);
        let token = key.mint("team-a.vote", "aaaa");
        assert_eq!(
            key.verify(&token),
            Ok(Caller {
                function: name("team-a.vote"),
                instance: "aaaa".to_string()
            })
        );
        let mac = token.rsplit('.').next().expect("mac");
        assert_eq!(
            key.verify(&format!("skf2.team-b.vote.aaaa.{mac}")),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn one_function_or_container_cannot_pass_as_another() {
        let key = TokenKey::from_bytes([7; 64]);
        let vote = key.mint("vote", "aaaa");
        let mac = vote.rsplit('.').next().expect("mac");
        // Another function's name, or another container, with vote's MAC.
        assert_eq!(
            key.verify(&format!("skf2.worker.aaaa.{mac}")),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            key.verify(&format!("skf2.vote.bbbb.{mac}")),
            Err(TokenError::BadSignature)
        );
        // A token of another daemon.
        let other = TokenKey::from_bytes([8; 64]).mint("vote", "aaaa");
        assert_eq!(key.verify(&other), Err(TokenError::BadSignature));
        // A tampered MAC, or a truncated one.
        let mut tampered = vote.clone();
        let last = tampered.pop().expect("a char");
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(key.verify(&tampered).is_err());
        assert!(key.verify(&vote[..vote.len() - 4]).is_err());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let key = TokenKey::from_bytes([7; 64]);
        for bad in [
            "",
            "skf2",
            "skf2.vote",
            "skf2.vote.aaaa",
            "skf1.vote.aaaa.AAAA",
            "skf2.a/b.aaaa.AAAA",
            "skf2.vote..AAAA",
            "skf2.vote.a-b.AAAA",
            "skf2.vote.aaaa.!!!",
        ] {
            assert_eq!(key.verify(bad), Err(TokenError::Malformed), "{bad}");
        }
    }

    #[test]
    fn the_key_is_never_printed() {
        let key = TokenKey::from_bytes([7; 64]);
        assert_eq!(format!("{key:?}"), "TokenKey(..)");
    }
}
