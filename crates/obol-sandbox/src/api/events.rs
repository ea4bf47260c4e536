//! `/v1/events`: immutable snapshots, filterable by `type` (with a `*`
//! wildcard), `types[]` and `created[...]`.

use serde_json::Value;

use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::form::Params;
use crate::store::Filter;

pub async fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "type",
        "types",
        "created",
        "delivery_success",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let mut filters = Vec::new();
    let single = p.nonempty("type")?;
    let many = p.list("types")?;
    match (single, many) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "You may only specify one of these parameters: type, types.",
            )
            .param("types"))
        }
        (Some(t), None) => filters.push(Filter::EventTypes(vec![t.to_string()])),
        (None, Some(ts)) => {
            if ts.len() > 20 {
                return Err(ApiError::invalid("You may pass at most 20 types.").param("types"));
            }
            if !ts.is_empty() {
                filters.push(Filter::EventTypes(ts));
            }
        }
        (None, None) => {}
    }
    ctx.list("event", filters, p, "/v1/events").await
}
