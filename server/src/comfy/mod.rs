//! The ComfyUI client: one persistent event socket per server, prompts submitted over HTTP,
//! results fetched the moment the end marker arrives, and history polling as the fallback for
//! a socket that went quiet or dropped.

mod error;
mod events;
mod fleet;
mod job;
mod pool;
mod positions;
mod schema;
mod server;
mod upload;
mod ws;

pub use error::ComfyError;
pub use events::JobUpdate;
pub use fleet::{Reservation, ServerOptions};
pub use job::Prompt;
pub use pool::ComfyPool;
pub use schema::{InputSpec, NodeClasses, NodeSchema, ObjectInfo};
pub use server::{ComfyServer, OutputImage, ServerProbe};
pub use upload::Uploaded;
