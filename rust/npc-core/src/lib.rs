//! npc-core: the pure-Rust heart of npc_rt.
//!
//! No Python here: everything is testable with `cargo test`, fuzzable, and usable from a Rust
//! binary. The `npc-py` crate is a thin binding over these modules.

pub mod convert;
pub mod error;
pub mod prompt;
pub mod rng;
pub mod score;
pub mod tokenize;

pub use error::{Error, Result};
