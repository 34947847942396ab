//! What can go wrong while answering a request.
//!
//! Request errors a client causes (a bad header, a body too large) are answered by the
//! handlers themselves; what is here is ours, answered with a logged 500 (or 503), never a
//! panic.

use std::path::PathBuf;

use chatmail_common::invite::InviteError;
use hyper::StatusCode;

/// A failure inside the backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// New credentials could not be drawn.
    #[error("new credentials: {0}")]
    Invite(#[from] InviteError),
    /// The invite link did not fit in a QR code.
    #[error("QR code of the invite link: {0}")]
    Qr(#[from] qrcode::types::QrError),
    /// Whether account creation is switched off could not be told.
    #[error("{}: {source}", path.display())]
    Nocreate {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A response could not be built (a header value we made is not a valid one).
    #[error("building the response: {0}")]
    Response(#[from] hyper::http::Error),
}

impl Error {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// Why a request body was not read to its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More bytes than allowed.
    #[error("the request body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// The body did not arrive in time.
    #[error("the request body did not arrive within {0:?}")]
    Timeout(std::time::Duration),
    /// The connection failed or the body was malformed.
    #[error("reading the request body: {0}")]
    Read(#[from] hyper::Error),
}
