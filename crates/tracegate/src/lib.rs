//! The tracegate binary's commands, as a library so tests drive them through the same code.

pub mod commands;
pub mod samples;
