//! A canary: one signed test message for one route.

mod message;
pub mod token;

pub use message::{Canary, ConflictingTokens, RouteNames, TOKEN_HEADER, extract_token};
pub use token::{Rejection, SigningKey, Token, check_instance};
