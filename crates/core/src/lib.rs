//! confab's core: the conversation model, the rules every dialect shares (validation, limits,
//! titles, cursors) and the pure views the dialects render (transcripts, interactions,
//! mentions). Nothing here does I/O, so every rule can be tested without a server.

pub mod analysis;
pub mod cursor;
pub mod daily;
pub mod error;
pub mod export;
pub mod ids;
pub mod input;
pub mod interactions;
pub mod json_out;
pub mod mentions;
pub mod model;
pub mod numbered;
pub mod page;
pub mod search;
pub mod seek;
pub mod sessions;
pub mod timefmt;
pub mod title;
pub mod transcript;

pub use error::{FieldError, ValidationError};
pub use model::{Conversation, Insights, Issue, Message, Role, Scope, Scopes, Sentiment, Status};
