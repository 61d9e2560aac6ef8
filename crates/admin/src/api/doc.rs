//! The OpenAPI document of `/api/v1/`, generated from the handlers' annotations and the schemas of
//! `crate::openapi`. It lives beside the handlers so the schemas stay a leaf that handlers and document both use.

use std::sync::OnceLock;

use http::StatusCode;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::reply::Reply;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "edgeguard admin API", description = "Domains, IP access limit, rate limiting and custom rules, \
        the bot-detection challenge, cache purge, the live view (requests per second, top talkers, blocks by hand, the \
        under-attack switch), activity log, blocks, and the configuration file of one edgeguard node. See docs/admin.md."),
    paths(
        super::domains::list_domains, super::domains::create_domain, super::domains::get_domain, super::domains::put_domain,
        super::domains::patch_domain, super::domains::delete_domain,
        super::protection::get_ip_access_limit, super::protection::put_ip_access_limit,
        super::access::get_access_control, super::access::put_access_control,
        super::protection::get_rate_limiting, super::protection::put_rate_limiting,
        super::challenge::get_challenge, super::challenge::put_challenge, super::challenge::start_challenge,
        super::purge::purge,
        super::protection::list_rules, super::protection::add_rule, super::protection::get_rule, super::protection::put_rule,
        super::protection::delete_rule, super::protection::order_rules,
        super::node::origin_addresses, super::node::stats, super::node::protection_tables, super::node::baseline,
        super::node::activity,
        super::live::live, super::live::top_talkers, super::live::start_block,
        super::attack::list_attacks, super::attack::get_attack, super::attack::put_attack,
        super::node::list_blocks, super::node::lift_block, super::node::get_config, super::node::put_config,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::FieldError)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| {
            format!("{{\"error\": \"cannot write the OpenAPI document: {e}\"}}")
        })
    })
}

pub fn reply() -> Reply {
    Reply::bytes(StatusCode::OK, crate::reply::JSON, document())
}
