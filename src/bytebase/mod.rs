//! The Bytebase v1 REST client and its typed models.
//!
//! Follows `shared/reference/bytebase-api.md`: service-account login with a 1 h token renewed
//! before expiry, offset page tokens followed until absent (short or empty pages included), errors
//! decoded from the body `code`, retries with backoff on 5xx, 429 and connection errors only.
//!
//! - [`client`]: transport (login, token, retries, paging, tracing, concurrency limit);
//! - [`api`]: one method per RPC cabgate calls;
//! - [`models`]: the resources, with Bytebase's zero values as defaults;
//! - [`error`], [`retry`], [`token`]: the pieces the transport is made of.

pub mod api;
pub mod client;
pub mod error;
pub mod models;
pub mod retry;
pub mod token;

pub use client::{Client, ClientConfig, ServiceKey, Stats};
pub use error::{BytebaseError, Code};
