//! Secrets out of every string that leaves the daemon about a camera.
//!
//! A camera's `source_url` often carries a password (`rtsp://user:pass@...`)
//! or a token in its query, and ffmpeg repeats that URL in its errors, which
//! end up in the status API, stored events (so SSE, WebSocket and MQTT) and
//! the log. Everything shown of a camera goes through this module:
//! [`url`] masks a URL for display, [`Secrets`] scrubs free text (an ffmpeg
//! line) of one camera's known secret values in every spelling, plus any
//! `scheme://user:pass@` or `user:pass@host` pattern ([`text`]).
//!
//! The user name is kept (an admin needs it to tell which account a camera
//! logs in as); passwords and secret query values are replaced by [`MASK`].

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

/// What a secret is replaced by.
pub const MASK: &str = "***";

/// Query keys whose values are treated as secrets (substring, any case).
const SECRET_KEYS: &[&str] = &[
    "pass",
    "pwd",
    "token",
    "key",
    "secret",
    "auth",
    "sig",
    "credential",
];

/// Where the authority (`user:pass@host:port`) of a URL's part after `://`
/// ends. Normally at the first `/`, `?` or `#`; but a password pasted with an
/// unencoded `/`, `?` or `#` in it (`admin:Pa#ss@cam/s`) would end it early and
/// leave the password in the "path", so when the plain authority has no `@`
/// and a `user:...@` comes later, the authority runs to that `@`'s host.
/// Masking too much is the safe way to be wrong.
fn authority_end(rest: &str) -> usize {
    let plain = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if rest[..plain].contains('@') {
        return plain;
    }
    match rest.find('@') {
        Some(at) if rest[..at].contains(':') => {
            let host = &rest[at + 1..];
            at + 1 + host.find(['/', '?', '#']).unwrap_or(host.len())
        }
        _ => plain,
    }
}

/// `url` with the password of its userinfo and secret-looking query values
/// replaced by [`MASK`]; text that is not a `scheme://` URL is returned as is.
pub fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(authority_end(rest));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{MASK}@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if is_secret_key(k) => format!("{k}={MASK}"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", q.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| k.contains(s))
}

/// Free text with every URL in it masked by [`url`], and any bare
/// `user:pass@host` word masked too (ffmpeg sometimes prints the authority
/// alone). Secrets that appear without such a pattern need [`Secrets`].
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut word = String::new();
    for ch in s.chars() {
        if ch.is_whitespace() || matches!(ch, '"' | '\'' | '<' | '>' | '`') {
            out.push_str(&word_masked(&word));
            word.clear();
            out.push(ch);
        } else {
            word.push(ch);
        }
    }
    out.push_str(&word_masked(&word));
    out
}

/// One whitespace-free word of [`text`].
fn word_masked(w: &str) -> String {
    if let Some(i) = w.find("://") {
        // The scheme is the run of scheme characters before `://`.
        let start = w[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |p| p + 1);
        let end = w[i + 3..].find("://").map_or(w.len(), |j| {
            // Another URL in the same word: mask it separately.
            let k = i + 3 + j;
            w[..k]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
                .map_or(k, |p| p + 1)
        });
        let (head, rest) = w.split_at(start);
        let (link, after) = rest.split_at(end - start);
        // Punctuation after a URL (`rtsp://...: Connection refused`) is not part of it.
        let bare = link.trim_end_matches([':', ',', ';', ')', ']']);
        let punct = &link[bare.len()..];
        return format!("{head}{}{punct}{}", url(bare), word_masked(after));
    }
    match w.rsplit_once('@') {
        Some((userinfo, host)) if !host.is_empty() => match userinfo.split_once(':') {
            Some((user, pass)) if !pass.is_empty() => format!("{user}:{MASK}@{host}"),
            _ => w.to_owned(),
        },
        _ => w.to_owned(),
    }
}

/// The secret values of one camera's source URL, in every spelling ffmpeg
/// may print them (as written, percent-decoded, percent-encoded), to scrub
/// from any text about that camera.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Longest first, so a secret that contains another is masked whole.
    values: Vec<String>,
}

impl Secrets {
    /// The password of the userinfo and the values of secret-looking query keys.
    pub fn of_url(u: &str) -> Secrets {
        let mut raw: Vec<&str> = Vec::new();
        if let Some((_, rest)) = u.split_once("://") {
            let (authority, tail) = rest.split_at(authority_end(rest));
            if let Some((userinfo, _)) = authority.rsplit_once('@') {
                if let Some((_, pass)) = userinfo.split_once(':') {
                    raw.push(pass);
                }
            }
            if let Some((_, query)) = tail.split_once('?') {
                let query = query.split('#').next().unwrap_or_default();
                for kv in query.split('&') {
                    if let Some((k, v)) = kv.split_once('=') {
                        if is_secret_key(k) {
                            raw.push(v);
                        }
                    }
                }
            }
        }
        let mut values: Vec<String> = Vec::new();
        for r in raw.into_iter().filter(|r| !r.is_empty()) {
            let decoded = percent_decode_str(r).decode_utf8_lossy().into_owned();
            let encoded = utf8_percent_encode(&decoded, NON_ALPHANUMERIC).to_string();
            let lower_hex = lower_escapes(&encoded);
            values.extend([r.to_owned(), decoded, encoded, lower_hex]);
        }
        values.retain(|v| !v.is_empty());
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Secrets { values }
    }

    /// The secrets of a camera's source URL and, when it has one, of its
    /// sub-stream (`detect_url`): every text about the camera is scrubbed of both.
    pub fn of_camera(source_url: &str, detect_url: Option<&str>) -> Secrets {
        let mut s = Self::of_url(source_url);
        if let Some(d) = detect_url {
            s.values.extend(Self::of_url(d).values);
            s.values
                .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
            s.values.dedup();
        }
        s
    }

    /// `s` with URL patterns masked ([`text`]) and every known secret value
    /// replaced by [`MASK`], wherever it appears.
    pub fn scrub(&self, s: &str) -> String {
        let mut out = text(s);
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        out
    }
}

/// `%2F` spelled `%2f`: ffmpeg and cameras use either case.
fn lower_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut hex_left = 0;
    for c in s.chars() {
        if c == '%' {
            hex_left = 2;
            out.push(c);
        } else if hex_left > 0 {
            hex_left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_masked() {
        assert_eq!(
            url("rtsp://admin:hunter2@10.0.0.5:554/stream1"),
            "rtsp://admin:***@10.0.0.5:554/stream1"
        );
        assert_eq!(
            url("rtsp://a:b:c@d@host/x?user=u&password=p&channel=1"),
            "rtsp://a:***@host/x?user=u&password=***&channel=1"
        );
        assert_eq!(url("rtsp://host/x"), "rtsp://host/x");
        assert_eq!(url("http://h/snap?token=abc"), "http://h/snap?token=***");
        assert_eq!(url("garbage"), "garbage");
        // A password pasted with an unencoded `#`, `?` or `/` in it.
        for pw in ["Pa#ss", "Pa?ss", "Pa/ss"] {
            let u = format!("rtsp://admin:{pw}@10.0.0.5/s");
            assert_eq!(url(&u), "rtsp://admin:***@10.0.0.5/s", "{u}");
            let said = format!("Error opening input {u}: 401");
            assert!(!Secrets::of_url(&u).scrub(&said).contains("ss@"), "{said}");
        }
    }

    #[test]
    fn free_text_urls_and_bare_userinfo_are_masked() {
        assert_eq!(
            text("rtsp://admin:s3cr%40t@127.0.0.1:1/cam?token=abc: Connection refused"),
            "rtsp://admin:***@127.0.0.1:1/cam?token=***: Connection refused"
        );
        assert_eq!(
            text("[tcp @ 0x55] connect admin:pw@10.0.0.2 failed"),
            "[tcp @ 0x55] connect admin:***@10.0.0.2 failed"
        );
        assert_eq!(
            text("'http://u:p@h/a'x=rtsp://v:q@g"),
            "'http://u:***@h/a'x=rtsp://v:***@g"
        );
        assert_eq!(text("plain words, a@b, 10:20"), "plain words, a@b, 10:20");
    }

    #[test]
    fn known_secrets_are_masked_in_every_spelling() {
        let s = Secrets::of_url("rtsp://admin:p%40ss%2Fw0rd@cam/s?channel=1&apikey=k3y&x=y#f");
        for leak in [
            "Auth failed for p%40ss%2Fw0rd",
            "Auth failed for p@ss/w0rd",
            "Auth failed for p%40ss%2fw0rd",
            "bad key k3y",
        ] {
            let out = s.scrub(leak);
            assert!(!out.contains("w0rd") && !out.contains("k3y"), "{out}");
            assert!(out.contains(MASK), "{out}");
        }
        assert_eq!(s.scrub("channel=1 admin"), "channel=1 admin");
        assert_eq!(Secrets::of_url("rtsp://cam/s").scrub("a b"), "a b");
        assert_eq!(Secrets::of_url("rtsp://user@cam/s").values.len(), 0);
    }
}
