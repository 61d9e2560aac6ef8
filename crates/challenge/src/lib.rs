//! The bot-detection challenge of edgeguard: a JavaScript proof-of-work page that a real browser passes without
//! user action, the signed token that goes with it, and the HMAC-signed clearance cookie handed out when the
//! answer checks. The data plane serves a [`ChallengePage`] (or [`render_page`]) while a rule's `bot_detection`
//! action is in force for a client, answers [`VERIFY_PATH`] with [`Challenger::handle_verify`], and lets a request
//! through when [`Challenger::check_clearance`] accepts its cookie.
//!
//! This crate does no I/O beyond reading or creating the key file and never looks at the clock: callers pass the
//! time, so tests drive it. It is not a CAPTCHA and does not tell humans from bots: a client that runs JavaScript (or
//! reimplements the hash) passes by paying about 2^D SHA-256 evaluations. The point is to make floods from scripts
//! expensive and to stop those without a JavaScript engine. Nothing here keeps per-client state; the one table is
//! the replay cache, fixed in size when the [`Challenger`] is made, that lets each solved token be redeemed once.

mod assets;
mod clearance;
mod difficulty;
mod endpoint;
mod key;
mod page;
mod random;
mod replay;
mod token;

pub use assets::{
    ASSET_CACHE_CONTROL, ASSET_PREFIX, Asset, SHA256_JS, asset, main_script, worker_script,
};
pub use clearance::{Clearance, ClearanceError};
pub use difficulty::Difficulty;
pub use endpoint::{MAX_VERIFY_BODY, VerifyResponse, safe_return_path};
pub use key::{Challenger, DEFAULT_CLEARANCE_TTL, KEY_FILE, KeyError};
pub use page::{ChallengePage, ChallengeParams, content_security_policy, render_page};
pub use replay::{DEFAULT_REPLAY_CAPACITY, ReplayStats};
pub use token::{ChallengeToken, TOKEN_TTL_MS, VerifyError};

/// Path on every protected host where the challenge page posts its answer.
pub const VERIFY_PATH: &str = "/.edgeguard/challenge/verify";

/// Name of the clearance cookie.
pub const COOKIE_NAME: &str = "edgeguard_clearance";

#[cfg(test)]
mod tests;
