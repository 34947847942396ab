//! The account service of a chatmail relay, as a library for the `chatmail-doveauth` binary,
//! its tests and benchmarks.

pub mod accounts;
pub mod cache;
pub mod handler;
pub mod hasher;
pub mod keys;
pub mod password;
pub mod rules;
pub mod syslimits;
