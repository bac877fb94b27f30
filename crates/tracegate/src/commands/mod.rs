//! One module per CLI command. Commands use `anyhow`; everything below them has typed errors.

pub mod audit;
pub mod mask;
pub mod migrate;
pub mod policy;
pub mod quickstart;
pub mod requests;
pub mod serve;
pub mod service_accounts;
pub mod token;
