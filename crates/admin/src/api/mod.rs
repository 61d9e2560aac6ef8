//! The `/api/v1/` endpoints: routing and the edit-validate-apply cycle every change goes through. Handlers are
//! synchronous (they call [`Control`], which may block) and run on tokio's blocking pool.

mod access;
pub(crate) mod attack;
mod challenge;
mod doc;
mod domains;
mod live;
pub(crate) mod node;
mod protection;
mod purge;

use std::sync::{Arc, Mutex};

use edgeguard_config::Config;
use http::{Method, StatusCode, header};

use crate::control::{ApplyError, Control};
use crate::error::{ApiError, FieldError};
use crate::reply::{Reply, Req};

pub(crate) use access::*;
pub(crate) use challenge::*;
pub(crate) use domains::*;
pub(crate) use live::*;
pub(crate) use node::*;
pub(crate) use protection::*;
pub(crate) use purge::purge;

/// What every handler shares.
pub struct State {
    pub control: Arc<dyn Control>,
    /// Held from reading the running configuration to applying the edited one, so two API calls never both edit
    /// the same starting point and one of them silently undo the other.
    edit: Mutex<()>,
    /// Domains whose "under attack" switch is on.
    pub(crate) attacks: attack::Attacks,
}

impl State {
    pub fn new(control: Arc<dyn Control>) -> Self {
        State {
            control,
            edit: Mutex::new(()),
            attacks: attack::Attacks::default(),
        }
    }

    /// Reads the running configuration, lets `f` build the next one (validated), applies it.
    pub fn change<T>(
        &self,
        f: impl FnOnce(&Config) -> Result<(Config, T), ApiError>,
    ) -> Result<T, ApiError> {
        let _guard = self.edit.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.control.config();
        let (next, out) = f(&current)?;
        if next != current {
            self.control.apply(next).map_err(|e| match e {
                ApplyError::Rejected(m) => ApiError::invalid(vec![FieldError::message(format!(
                    "the node refused the change: {m}"
                ))]),
                ApplyError::Failed(m) => {
                    ApiError::internal(format!("the change could not be applied: {m}"))
                }
            })?;
        }
        Ok(out)
    }
}

/// A route of the API, with its path parameters decoded.
#[derive(Debug)]
pub enum Route {
    OpenApi,
    Domains,
    Domain(String),
    IpAccessLimit(String),
    AccessControl(String),
    RateLimiting(String),
    Challenge(String),
    ChallengeStart(String),
    Purge(String),
    Rules(String),
    RulesOrder(String),
    Rule(String, String),
    OriginAddresses(String),
    Stats(String),
    ProtectionTables(String),
    Live(String),
    TopTalkers(String),
    DomainBlocks(String),
    UnderAttack(String),
    UnderAttackAll,
    Baseline(String),
    Activity,
    Blocks,
    Block(String),
    Config,
}

impl Route {
    /// The route of the segments after `/api/v1/`; `None` for no such path.
    pub fn parse(segments: &[String]) -> Option<Route> {
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        let name = |i: usize| s[i].to_owned();
        Some(match s.as_slice() {
            ["openapi.json"] => Route::OpenApi,
            ["domains"] => Route::Domains,
            ["domains", _] => Route::Domain(name(1)),
            ["domains", _, "ip-access-limit"] => Route::IpAccessLimit(name(1)),
            ["domains", _, "access-control"] => Route::AccessControl(name(1)),
            ["domains", _, "rate-limiting"] => Route::RateLimiting(name(1)),
            ["domains", _, "challenge"] => Route::Challenge(name(1)),
            ["domains", _, "challenge", "start"] => Route::ChallengeStart(name(1)),
            ["domains", _, "purge"] => Route::Purge(name(1)),
            ["domains", _, "rate-limiting", "rules"] => Route::Rules(name(1)),
            ["domains", _, "rate-limiting", "rules", "order"] => Route::RulesOrder(name(1)),
            ["domains", _, "rate-limiting", "rules", _] => Route::Rule(name(1), name(4)),
            ["domains", _, "origin-addresses"] => Route::OriginAddresses(name(1)),
            ["domains", _, "stats"] => Route::Stats(name(1)),
            ["domains", _, "protection-tables"] => Route::ProtectionTables(name(1)),
            ["domains", _, "live"] => Route::Live(name(1)),
            ["domains", _, "top-talkers"] => Route::TopTalkers(name(1)),
            ["domains", _, "blocks"] => Route::DomainBlocks(name(1)),
            ["domains", _, "under-attack"] => Route::UnderAttack(name(1)),
            ["under-attack"] => Route::UnderAttackAll,
            ["domains", _, "baseline"] => Route::Baseline(name(1)),
            ["activity"] => Route::Activity,
            ["blocks"] => Route::Blocks,
            ["blocks", _] => Route::Block(name(1)),
            ["config"] => Route::Config,
            _ => return None,
        })
    }

    /// The methods the route answers.
    pub fn methods(&self) -> &'static [Method] {
        use Route::*;
        match self {
            OpenApi | OriginAddresses(_) | Stats(_) | ProtectionTables(_) | Baseline(_)
            | Live(_) | TopTalkers(_) | UnderAttackAll | Activity | Blocks => &[Method::GET],
            Domains | Rules(_) => &[Method::GET, Method::POST],
            Domain(_) => &[Method::GET, Method::PUT, Method::PATCH, Method::DELETE],
            IpAccessLimit(_) | AccessControl(_) | RateLimiting(_) | Challenge(_)
            | UnderAttack(_) | Config => &[Method::GET, Method::PUT],
            RulesOrder(_) => &[Method::PUT],
            ChallengeStart(_) | Purge(_) | DomainBlocks(_) => &[Method::POST],
            Rule(..) => &[Method::GET, Method::PUT, Method::DELETE],
            Block(_) => &[Method::DELETE],
        }
    }

    /// Whether a request with a body must send it as TOML rather than JSON.
    pub fn takes_toml(&self) -> bool {
        matches!(self, Route::Config)
    }
}

/// Runs the handler of an authorized request whose method the route answers.
pub fn handle(state: &State, route: Route, req: &Req) -> Reply {
    use Route::*;
    let m = &req.method;
    let result = match route {
        OpenApi => Ok(doc::reply()),
        Domains if m == Method::POST => create_domain(state, req),
        Domains => list_domains(state),
        Domain(name) => match *m {
            Method::PUT => put_domain(state, &name, req),
            Method::PATCH => patch_domain(state, &name, req),
            Method::DELETE => delete_domain(state, &name),
            _ => get_domain(state, &name),
        },
        IpAccessLimit(name) if m == Method::PUT => put_ip_access_limit(state, &name, req),
        IpAccessLimit(name) => get_ip_access_limit(state, &name),
        AccessControl(name) if m == Method::PUT => put_access_control(state, &name, req),
        AccessControl(name) => get_access_control(state, &name),
        RateLimiting(name) if m == Method::PUT => put_rate_limiting(state, &name, req),
        RateLimiting(name) => get_rate_limiting(state, &name),
        Challenge(name) if m == Method::PUT => put_challenge(state, &name, req),
        Challenge(name) => get_challenge(state, &name),
        ChallengeStart(name) => start_challenge(state, &name, req),
        Purge(name) => purge(state, &name, req),
        Rules(name) if m == Method::POST => add_rule(state, &name, req),
        Rules(name) => list_rules(state, &name),
        RulesOrder(name) => order_rules(state, &name, req),
        Rule(name, rule) => match *m {
            Method::PUT => put_rule(state, &name, &rule, req),
            Method::DELETE => delete_rule(state, &name, &rule),
            _ => get_rule(state, &name, &rule),
        },
        OriginAddresses(name) => origin_addresses(state, &name),
        Stats(name) => stats(state, &name, req),
        ProtectionTables(name) => protection_tables(state, &name),
        Live(name) => live(state, &name, req),
        TopTalkers(name) => top_talkers(state, &name, req),
        DomainBlocks(name) => start_block(state, &name, req),
        UnderAttack(name) if m == Method::PUT => attack::put_attack(state, &name, req),
        UnderAttack(name) => attack::get_attack(state, &name),
        UnderAttackAll => attack::list_attacks(state),
        Baseline(name) => baseline(state, &name),
        Activity => activity(state, req),
        Blocks => list_blocks(state),
        Block(id) => lift_block(state, &id),
        Config if m == Method::PUT => put_config(state, req),
        Config => get_config(state),
    };
    result.unwrap_or_else(|e| Reply::error(&e))
}

/// `201 Created` with `Location`.
pub(crate) fn created(location: &str, value: &impl serde::Serialize) -> Reply {
    Reply::json(StatusCode::CREATED, value).with_header(header::LOCATION, location)
}

/// Field errors relative to a part of a domain: `prefix.` is removed from fields that start with it.
pub(crate) fn strip_prefix(mut e: ApiError, prefix: &str) -> ApiError {
    let dotted = format!("{prefix}.");
    for f in &mut e.errors {
        if let Some(field) = &f.field {
            if let Some(rest) = field.strip_prefix(&dotted) {
                f.field = Some(rest.to_owned());
            } else if field == prefix {
                f.field = None;
            }
        }
    }
    e
}
