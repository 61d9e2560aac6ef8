//! A domain's access lists (`[domain.access_control]`, SPEC section 9.2): address ranges never limited, blocked or
//! challenged (`allow`) and ranges always refused with 403 (`deny`). Edited through the configuration like every
//! other setting, so a change is validated with the whole file, applied live and written back.

use edgeguard_config::Config;
use serde_json::{Value, json};

use super::{State, edit_domain_json, strip_prefix};
use crate::edit::{domain_json, find_domain, merge_patch};
use crate::error::{ApiError, ErrorBody};
use crate::openapi::AccessControlDoc;
use crate::reply::{Reply, Req};

fn view(config: &Config, name: &str) -> Result<Value, ApiError> {
    let i = find_domain(config, name)?;
    let mut v = domain_json(config, i)?
        .get("access_control")
        .cloned()
        .unwrap_or_else(|| json!({}));
    // Both lists always present, empty when unset, so a client can edit and send back what it read.
    if let Value::Object(m) = &mut v {
        for k in ["allow", "deny"] {
            m.entry(k).or_insert_with(|| json!([]));
        }
    }
    Ok(v)
}

#[utoipa::path(get, path = "/api/v1/domains/{name}/access-control", tag = "protection",
    params(("name" = String, Path, description = "Host name")),
    responses((status = 200, body = AccessControlDoc), (status = 404, body = ErrorBody)))]
pub(crate) fn get_access_control(state: &State, name: &str) -> Result<Reply, ApiError> {
    Ok(Reply::ok(&view(&state.control.config(), name)?))
}

#[utoipa::path(put, path = "/api/v1/domains/{name}/access-control", tag = "protection",
    params(("name" = String, Path, description = "Host name")),
    request_body(content = AccessControlDoc, content_type = "application/json",
        description = "Lists given replace the domain's; e.g. `{\"allow\": [\"192.0.2.0/24\"], \"deny\": [\"198.51.100.0/24\"]}`"),
    responses((status = 200, body = AccessControlDoc), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) fn put_access_control(state: &State, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let body = req.json_object()?;
    let patch = json!({ "access_control": Value::Object(body) });
    edit_domain_json(state, name, |d| {
        merge_patch(d, &patch);
        Ok(())
    })
    .map_err(|e| strip_prefix(e, "access_control"))?;
    get_access_control(state, name)
}
