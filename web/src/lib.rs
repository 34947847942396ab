//! chatmail-web: the HTTP backend of a chatmail relay, behind nginx.
//!
//! nginx serves static files and terminates TLS; what it cannot serve comes here, over a
//! unix socket with HTTP/1.1:
//!
//! * `/`, `/index.html`: the invite page, with the invite link as a QR code ([`pages`],
//!   [`qr`]);
//! * `/info.html`, `/privacy.html`: limits, retention and privacy, from `chatmail.ini`;
//! * `/new`: credentials for a new account, as Delta Chat's `dcaccount:` links fetch them
//!   ([`new_account`]);
//! * `/mxdeliv`: relay-to-relay delivery over HTTPS, handed to Postfix by SMTP
//!   ([`mxdeliv`], [`smtp`]).
//!
//! [`server`] is the hyper glue (limits, routing, logging); [`error`] what can go wrong.

pub mod error;
pub mod mxdeliv;
pub mod new_account;
pub mod pages;
pub mod qr;
pub mod server;
pub mod smtp;

pub use error::Error;
pub use server::{App, Limits, serve};
