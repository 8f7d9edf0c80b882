//! `/api/v1/audit`: every change, oldest first, paged by sequence; filterable by object.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};

use super::{AdminState, ApiError, ListParams, Principal, page};
use crate::control::model::{AuditEntry, Page};

pub fn routes() -> Router<AdminState> {
    Router::new().route("/api/v1/audit", get(list))
}

#[utoipa::path(get, path = "/api/v1/audit", params(ListParams),
    responses((status = 200, body = Page<AuditEntry>)))]
pub async fn list(
    State(st): State<AdminState>,
    p: Principal,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    let q = params.query(&p, &["tenant_id", "object_id", "order"])?;
    let rows = st.store.audit(&q).await?;
    Ok(Json(page(
        rows,
        &q,
        |a: &AuditEntry| a.seq.to_string(),
        |a| a,
    )))
}
