//! Salient scoring: masked mean pooling of text-encoder hidden states ([`pool`]) and the salient
//! text-space score of negative-prompt candidates ([`salient`]), batched with rayon.

pub mod kernels;
pub mod pool;
pub mod salient;

pub use pool::{mean_pool, HiddenElement};
pub use salient::{salient_scores, salient_scores_ragged, Matrix, RaggedInput, Scores};
