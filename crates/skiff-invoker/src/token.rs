//! Invoke tokens: what lets a function call other functions through the function API.
//!
//! Each function's containers get `SKIFF_TOKEN`, a token naming that function and signed by
//! the daemon: `skf1.<function>.<base64url(HMAC-SHA256(key, "skf1.<function>"))>`. The key
//! is 64 random bytes (HMAC-SHA256's block size) drawn when the daemon starts and kept in memory only: containers never
//! outlive the daemon (it removes them when it starts and when it stops), so every token in
//! use was minted by the running daemon, and a restart revokes all earlier ones. The MAC is
//! checked in constant time; a token says which function is calling, and one function cannot
//! pass as another without the key. A token grants invoking functions and reading call
//! records, nothing else: the function API serves no management route.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use skiff_core::FunctionName;

/// The prefix (and version) of every token.
const PREFIX: &str = "skf1";

/// Why a token was refused. The messages never quote the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token was given.
    #[error("this route needs `Authorization: Bearer <token>`: use $SKIFF_TOKEN")]
    Missing,
    /// The token is not of the form `skf1.<function>.<mac>`.
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

    /// The token of `function`.
    pub fn mint(&self, function: &FunctionName) -> String {
        let mut mac = self.mac();
        mac.update(format!("{PREFIX}.{function}").as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{PREFIX}.{function}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The function a token was minted for, if it was minted with this key.
    pub fn verify(&self, token: &str) -> Result<FunctionName, TokenError> {
        let mut parts = token.trim().splitn(3, '.');
        let (Some(PREFIX), Some(function), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let function = FunctionName::parse(function).map_err(|_| TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(format!("{PREFIX}.{function}").as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        Ok(function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> FunctionName {
        FunctionName::parse(n).expect("name")
    }

    #[test]
    fn a_token_names_its_function() {
        let key = TokenKey::from_bytes([7; 64]);
        let token = key.mint(&name("vote"));
        assert!(token.starts_with("skf1.vote."), "{token}");
        assert_eq!(key.verify(&token), Ok(name("vote")));
    }

    #[test]
    fn one_function_cannot_pass_as_another() {
        let key = TokenKey::from_bytes([7; 64]);
        let vote = key.mint(&name("vote"));
        let mac = vote.rsplit('.').next().expect("mac");
        // Another function's name with vote's MAC.
        assert_eq!(
            key.verify(&format!("skf1.worker.{mac}")),
            Err(TokenError::BadSignature)
        );
        // A token of another daemon.
        let other = TokenKey::from_bytes([8; 64]).mint(&name("vote"));
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
            "skf1",
            "skf1.vote",
            "skf2.vote.AAAA",
            "skf1.a/b.AAAA",
            "skf1.vote.!!!",
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
