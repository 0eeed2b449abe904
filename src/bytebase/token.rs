//! The access token and when to renew it.
//!
//! Service-account tokens last one hour and cannot be refreshed (bytebase-api.md §1): the client
//! logs in again shortly before `exp`. The expiry is read from the JWT payload without verifying
//! the signature: the token is Bytebase's to check, the client only needs the time. A token whose
//! payload cannot be read is treated as valid for a conservative 10 minutes.

use chrono::{DateTime, TimeDelta, Utc};

/// Renew this long before the token's `exp`, so a call never starts with a token about to expire.
pub const RENEW_MARGIN: TimeDelta = TimeDelta::minutes(5);

/// How long an unreadable token is trusted.
const UNKNOWN_LIFETIME: TimeDelta = TimeDelta::minutes(10);

/// A bearer token and the time the client stops using it. Its `Debug` hides the token.
#[derive(Clone)]
pub struct AccessToken {
    secret: String,
    renew_at: DateTime<Utc>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken").field("renew_at", &self.renew_at).finish_non_exhaustive()
    }
}

impl AccessToken {
    /// Wraps a token returned by login, obtained at `now`.
    pub fn new(secret: String, now: DateTime<Utc>) -> Self {
        let renew_at = match expiry(&secret) {
            // A token shorter-lived than the margin is used for half its life, not re-fetched
            // before every call.
            Some(exp) if exp - RENEW_MARGIN <= now => now + (exp - now) / 2,
            Some(exp) => exp - RENEW_MARGIN,
            None => now + UNKNOWN_LIFETIME,
        };
        AccessToken { secret, renew_at }
    }

    /// The header value, `Bearer …`.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.secret)
    }

    /// True once the token should be replaced before the next call.
    pub fn needs_renewal(&self, now: DateTime<Utc>) -> bool {
        now >= self.renew_at
    }
}

/// The `exp` claim of a JWT, unverified.
pub fn expiry(jwt: &str) -> Option<DateTime<Utc>> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = decode_base64url(payload)?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_i64()?;
    DateTime::from_timestamp(exp, 0)
}

/// Decodes unpadded (or padded) base64url; `None` on any other character.
fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for byte in text.bytes().take_while(|b| *b != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(payload: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in payload.as_bytes().chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn reads_exp_from_the_payload() {
        let jwt =
            format!("x.{}.sig", encode(r#"{"sub":"a@service.bytebase.com","exp":1796299200}"#));
        assert_eq!(expiry(&jwt), DateTime::from_timestamp(1_796_299_200, 0));
    }

    #[test]
    fn renews_before_exp_and_distrusts_unreadable_tokens() {
        let now = DateTime::from_timestamp(1_796_295_600, 0).unwrap();
        let jwt = format!("x.{}.sig", encode(r#"{"exp":1796299200}"#));
        let token = AccessToken::new(jwt, now);
        assert!(!token.needs_renewal(now));
        assert!(token.needs_renewal(now + TimeDelta::minutes(56)));

        let short = AccessToken::new(format!("x.{}.sig", encode(r#"{"exp":1796295720}"#)), now);
        assert!(!short.needs_renewal(now + TimeDelta::seconds(59)));
        assert!(short.needs_renewal(now + TimeDelta::seconds(60)));

        let opaque = AccessToken::new("not-a-jwt".into(), now);
        assert!(!opaque.needs_renewal(now + TimeDelta::minutes(9)));
        assert!(opaque.needs_renewal(now + TimeDelta::minutes(10)));
        assert!(!format!("{opaque:?}").contains("not-a-jwt"));
    }
}
