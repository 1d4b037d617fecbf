//! The one error type of the core. Each variant maps onto one Python exception class
//! (see `npc-py/src/errors.rs`), so the variant is the contract, the message is for people.

use thiserror::Error as ThisError;

#[derive(Debug, ThisError, Clone, PartialEq)]
pub enum Error {
    /// A caller-supplied value is unusable (empty prompt, empty candidate list, bad option).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Arrays whose dimensions do not agree.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// NaN or infinity where finite numbers are required.
    #[error("non-finite value: {0}")]
    NonFinite(String),
    /// A tokenizer file or vocabulary that cannot be loaded or used.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    /// A file that cannot be read or written.
    #[error("io error: {0}")]
    Io(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}
