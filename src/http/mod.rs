//! HTTP/1.1 as mioserve speaks it: parsing request heads ([`request`]),
//! writing response heads ([`response`]) and the status codes we answer with
//! ([`status`]).
//!
//! Nothing here does I/O or allocates per request: the parser borrows the
//! connection's read buffer and describes the request with offsets into it;
//! the head writer appends to a pooled output buffer.

pub mod range;
pub mod request;
pub mod response;
pub mod status;
pub mod validators;

pub use request::{Method, ParseError, Parsed, Request, Span, Version};
pub use status::Status;
