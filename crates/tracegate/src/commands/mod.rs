//! One module per CLI command. Commands use `anyhow`; everything below them has typed errors.

pub mod policy;
pub mod quickstart;
pub mod serve;
pub mod token;
