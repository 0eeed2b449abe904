//! The Bytebase v1 REST client and its typed models.
//!
//! Follows `shared/reference/bytebase-api.md`: service-account login with a 1 h token renewed
//! before expiry, offset page tokens followed until absent (short or empty pages included), errors
//! decoded from the body `code`, retries with backoff on 5xx, 429 and connection errors only.
