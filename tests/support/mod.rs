//! Shared helpers for the integration tests, one concern per module:
//!
//! - [`server`]: the real `mioserve` binary as a child process ([`TestServer`]), and runs
//!   that must exit on their own ([`run_to_exit`]).
//! - [`fixture`]: a temporary document root with known files and a fixed modification time
//!   ([`Fixture`]).
//! - [`client`]: a tiny strict HTTP/1.1 client that parses one response at a time
//!   ([`Client`], [`Response`]).
//! - [`access_log`]: parsing access-log lines and waiting for the workers to flush them.
//! - [`assertions`]: checks shared by several test files (status lines, common headers,
//!   file and error responses).
//! - [`tools`], [`browser`], [`netns`]: external programs the tests drive (curl, wget, ab,
//!   h2load, wrk; headless Chromium; network namespaces).
//! - [`load`]: a constant wrk load while servers restart, and its failure count.
//!
//! The first five are re-exported here, so a test file needs only `use support::*;`.
//! Every test crate compiles this module on its own and uses only part of it, hence the
//! `dead_code` and `unused_imports` allowances.
#![allow(dead_code, unused_imports)]

pub mod access_log;
pub mod assertions;
pub mod browser;
pub mod client;
pub mod fixture;
pub mod load;
pub mod netns;
pub mod server;
pub mod tools;

pub use access_log::*;
pub use assertions::*;
pub use client::*;
pub use fixture::*;
pub use server::*;
