//! The phases of a request, one module each, in the order `pipeline::run_phases` runs them: [`route`],
//! [`protect`] (blocks and challenges in force, IP access limit, rate-limiting rules; the challenge's verify
//! endpoint), [`limit_req`], [`limit_conn`], [`redirect`] (`https_redirect`), [`cache`], [`upstream`]. Each takes the [`crate::ctx::RequestCtx`]
//! and returns a [`crate::ctx::Flow`] (the last two own the request and always answer). No phase imports
//! another, except the upstream phase, which hands the answer to the cache's half of the exchange.

pub(crate) mod cache;
pub(crate) mod limit_conn;
pub(crate) mod limit_req;
pub(crate) mod protect;
pub(crate) mod redirect;
pub(crate) mod refresh;
pub(crate) mod route;
pub(crate) mod upstream;
