//! The syntax of references a function spec carries: its image reference and its readiness
//! path. Each check returns what is wrong as a sentence, for a [`SpecError`](crate::SpecError)
//! naming the field.

use std::str::FromStr;

/// Longest image reference taken.
const MAX_IMAGE_LEN: usize = 512;
/// Longest readiness path taken.
const MAX_PATH_LEN: usize = 1024;

/// Checks that `image` is a reference the Docker engine can resolve: Docker's reference
/// grammar (an optional registry `host[:port]/`, lowercase path components, an optional
/// `:tag` and an optional `@sha256:<64 hex digits>`), which also covers a bare image id
/// (`sha256:<64 hex digits>`, read as a name and a tag).
pub fn check_image(image: &str) -> Result<(), String> {
    if image.len() > MAX_IMAGE_LEN {
        return Err(format!(
            "is not an image reference: longer than {MAX_IMAGE_LEN} characters"
        ));
    }
    oci_spec::distribution::Reference::from_str(image)
        .map(|_| ())
        .map_err(|e| {
            format!("`{image}` is not an image reference ({e}): use a name such as `repo/name:tag`, lowercase, or `name@sha256:<digest>`")
        })
}

/// Checks that `path` is a plain absolute path, as sent on a request line: it starts with
/// exactly one `/` (no scheme, no `//authority`), holds only printable ASCII (no spaces, no
/// control characters, no fragment) and may end with a `?query`.
pub fn check_readiness_path(path: &str) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "`{}` is not a path: {why}; use a plain absolute path such as /ready",
            path.escape_default()
        ))
    };
    if path.len() > MAX_PATH_LEN {
        return refuse("too long");
    }
    if !path.starts_with('/') {
        return refuse("it must start with `/`");
    }
    if path.starts_with("//") {
        return refuse("`//` would name another host");
    }
    if path
        .chars()
        .any(|c| !c.is_ascii() || c.is_ascii_control() || c == ' ')
    {
        return refuse("spaces, control and non-ASCII characters must be percent-encoded");
    }
    if path.contains('#') {
        return refuse("a fragment is never sent to a server");
    }
    // RFC 3986: a path of `pchar`s and `/`, then a query that may also hold `?`.
    let (path_part, query) = path.split_once('?').unwrap_or((path, ""));
    let is_pchar = |c: u8| c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%".contains(&c);
    let valid_chars = path_part.bytes().all(|c| is_pchar(c) || c == b'/')
        && query.bytes().all(|c| is_pchar(c) || c == b'/' || c == b'?');
    let valid_escapes = path
        .split('%')
        .skip(1)
        .all(|rest| rest.len() >= 2 && rest.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit));
    if !valid_chars || !valid_escapes {
        return refuse("it holds characters a URL path cannot carry unencoded");
    }
    // The readiness probe sends it as the origin-form target of an `http::Uri`.
    match http::uri::PathAndQuery::from_str(path) {
        Ok(parsed) if parsed.as_str() == path => Ok(()),
        _ => refuse("it is not an origin-form path"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_image_references_are_accepted() {
        for image in [
            "x".to_string(),
            "hello:1".to_string(),
            "skiff/hello:latest".to_string(),
            "library/alpine".to_string(),
            "my-org/my_app.v2:1.0.0-rc_1".to_string(),
            "registry.example.com:5000/team/app:v1".to_string(),
            "localhost:5000/app".to_string(),
            format!("app@sha256:{DIGEST}"),
            format!("app:1@sha256:{DIGEST}"),
            format!("sha256:{DIGEST}"),
            "0deb1fb9310d".to_string(),
        ] {
            assert_eq!(check_image(&image), Ok(()), "{image}");
        }
    }

    #[test]
    fn malformed_image_references_are_refused() {
        for image in [
            "UPPER:1".to_string(),
            "Hello".to_string(),
            "a::b".to_string(),
            "a b".to_string(),
            ":tag".to_string(),
            "app:".to_string(),
            "app:-tag".to_string(),
            format!("app:{}", "t".repeat(129)),
            "app@sha256:abc".to_string(),
            format!("app@md5:{DIGEST}"),
            "/app".to_string(),
            "app/".to_string(),
            "a//b".to_string(),
            "app:1:2".to_string(),
            "x".repeat(513),
        ] {
            assert!(check_image(&image).is_err(), "{image}");
        }
        let message = check_image("UPPER:1").expect_err("uppercase");
        assert!(message.contains("`UPPER:1`"), "{message}");
    }

    #[test]
    fn only_plain_absolute_paths_are_readiness_paths() {
        for path in [
            "/",
            "/ready",
            "/health/live",
            "/ready?full=1&x=%20y",
            "/a/b.c-d_e~f",
            "/%2F%2Fevil",
        ] {
            assert_eq!(check_readiness_path(path), Ok(()), "{path}");
        }
        for (path, says) in [
            ("//evil.example/x", "another host"),
            ("//", "another host"),
            ("ready", "start with"),
            ("http://evil.example/x", "start with"),
            ("", "start with"),
            ("/a b", "percent-encoded"),
            ("/a\tb", "percent-encoded"),
            ("/a\nb", "percent-encoded"),
            ("/\u{7f}", "percent-encoded"),
            ("/é", "percent-encoded"),
            ("/ready#top", "fragment"),
            ("/a\\b", "unencoded"),
            ("/a<b>", "unencoded"),
            ("/a\"b", "unencoded"),
            ("/a{b}", "unencoded"),
            ("/a%zz", "unencoded"),
            ("/a%2", "unencoded"),
        ] {
            let message = check_readiness_path(path).expect_err(path);
            assert!(message.contains(says), "{path:?}: {message}");
        }
        assert!(check_readiness_path(&format!("/{}", "a".repeat(1024))).is_err());
    }
}
