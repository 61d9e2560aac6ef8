//! The control plane of an edgeguard node: the admin HTTP API under `/api/v1/` (domains, IP access limit, rate
//! limiting and custom rules, activity log, blocks, back-to-origin addresses, the configuration file), its
//! OpenAPI document, `/healthz`, `/metrics`, and the web console at `/console/`. Every change is made on a copy
//! of the running configuration, validated exactly as the configuration file is (`edgeguard_config::parse`),
//! and handed to the node through [`Control::apply`].
//!
//! Not here: the node itself. This crate never touches the data plane, the statistics or the activity log
//! directly; the binary implements [`Control`] over the running node (applying live, persisting the file).
//! [`MemoryControl`] is a stand-in for tests and demos. Endpoints and console are documented in `docs/admin.md`.

pub(crate) mod api;
mod console;
pub mod control;
mod edit;
pub mod error;
pub mod live;
pub mod memory;
pub mod openapi;
mod reply;
mod server;

pub use api::node::{OriginAddresses, ParentAddresses, back_to_origin};
pub use control::{
    ApplyError, BaselineFindings, BaselineMeasure, BaselinePath, BaselineShares, BaselineView,
    BlockInfo, Control, ProtectionTable, PurgeTarget, StartError, StatusClassShare,
    TIMED_CHALLENGE_TTL_S, block_id,
};
pub use error::{ErrorBody, FieldError};
pub use live::{LivePoint, LiveView, Talker, TalkerWindow, TopTalkers};
pub use memory::MemoryControl;
pub use server::{MAX_BODY_BYTES, RunningAdmin, serve, start};
