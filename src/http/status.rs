//! The status codes mioserve answers with, their reason phrases, and which of
//! them end the connection.

/// A response status. Only the codes a static-file server needs exist, so a
/// `match` on `Status` is always exhaustive and cheap (`Copy`, one byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// 200: the file follows.
    Ok,
    /// 204: nothing to send beyond the head (the answer to `OPTIONS`).
    NoContent,
    /// 206: one byte range of the file follows (RFC 9110 §15.3.7).
    PartialContent,
    /// 301: a directory was asked for without its trailing slash.
    MovedPermanently,
    /// 304: the client's cached copy is still current (RFC 9110 §15.4.5).
    NotModified,
    /// 400: the request is malformed; we cannot trust its framing.
    BadRequest,
    /// 403: the file exists but may not be served.
    Forbidden,
    /// 404: no such file.
    NotFound,
    /// 405: a method HTTP defines, but a static server does not allow.
    MethodNotAllowed,
    /// 408: the client took too long to send its request head.
    RequestTimeout,
    /// 413: the request announces a body larger than we are willing to
    /// read and discard.
    ContentTooLarge,
    /// 414: the request target is longer than we accept.
    UriTooLong,
    /// 416: no byte of the requested range exists in the file.
    RangeNotSatisfiable,
    /// 431: the request head is larger than we accept.
    RequestHeaderFieldsTooLarge,
    /// 500: something failed on our side (an unexpected `errno`).
    InternalServerError,
    /// 501: a method we do not know at all.
    NotImplemented,
    /// 503: we are out of a resource (file descriptors) right now, or the
    /// health path is asked while the server drains.
    ServiceUnavailable,
    /// 505: an HTTP major version other than 1.
    HttpVersionNotSupported,
}

impl Status {
    /// Every status, in declaration order: `Status::ALL[status.index()]` is
    /// `status`.
    pub const ALL: [Status; 18] = [
        Status::Ok,
        Status::NoContent,
        Status::PartialContent,
        Status::MovedPermanently,
        Status::NotModified,
        Status::BadRequest,
        Status::Forbidden,
        Status::NotFound,
        Status::MethodNotAllowed,
        Status::RequestTimeout,
        Status::ContentTooLarge,
        Status::UriTooLong,
        Status::RangeNotSatisfiable,
        Status::RequestHeaderFieldsTooLarge,
        Status::InternalServerError,
        Status::NotImplemented,
        Status::ServiceUnavailable,
        Status::HttpVersionNotSupported,
    ];

    /// The status's position in [`Status::ALL`], for tables indexed by
    /// status (the site's status pages).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The three-digit code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::NoContent => 204,
            Status::PartialContent => 206,
            Status::MovedPermanently => 301,
            Status::NotModified => 304,
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::ContentTooLarge => 413,
            Status::UriTooLong => 414,
            Status::RangeNotSatisfiable => 416,
            Status::RequestHeaderFieldsTooLarge => 431,
            Status::InternalServerError => 500,
            Status::NotImplemented => 501,
            Status::ServiceUnavailable => 503,
            Status::HttpVersionNotSupported => 505,
        }
    }

    /// The reason phrase (RFC 9110 §15).
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::NoContent => "No Content",
            Status::PartialContent => "Partial Content",
            Status::MovedPermanently => "Moved Permanently",
            Status::NotModified => "Not Modified",
            Status::BadRequest => "Bad Request",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::ContentTooLarge => "Content Too Large",
            Status::UriTooLong => "URI Too Long",
            Status::RangeNotSatisfiable => "Range Not Satisfiable",
            Status::RequestHeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::InternalServerError => "Internal Server Error",
            Status::NotImplemented => "Not Implemented",
            Status::ServiceUnavailable => "Service Unavailable",
            Status::HttpVersionNotSupported => "HTTP Version Not Supported",
        }
    }

    /// Whether a response with this status must end the connection. After
    /// these we no longer know where the client's next request would start
    /// (malformed or oversized head, a protocol we do not speak), so the only
    /// safe continuation is none (RFC 9112 §9.6).
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            Status::BadRequest
                | Status::RequestTimeout
                | Status::ContentTooLarge
                | Status::UriTooLong
                | Status::RequestHeaderFieldsTooLarge
                | Status::NotImplemented
                | Status::HttpVersionNotSupported
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Status;

    #[test]
    fn codes_are_unique_and_in_order() {
        let codes: Vec<u16> = Status::ALL.iter().map(|s| s.code()).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(codes, sorted);
    }

    #[test]
    fn every_status_indexes_its_place_in_all() {
        for (index, status) in Status::ALL.iter().enumerate() {
            assert_eq!(status.index(), index, "{status:?}");
        }
    }

    #[test]
    fn framing_errors_close_and_file_answers_keep_alive() {
        assert!(Status::BadRequest.closes_connection());
        assert!(Status::RequestHeaderFieldsTooLarge.closes_connection());
        assert!(!Status::NotFound.closes_connection());
        assert!(!Status::NotModified.closes_connection());
        assert!(!Status::MovedPermanently.closes_connection());
    }
}
