//! `/api/v1/openapi.json`: the admin API's OpenAPI document, generated from the handlers.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use super::AdminState;
use crate::control::model;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ringway admin API",
        description = "Tenants, services, apps, keys and subscriptions of a Ringway gateway. Every call needs Authorization: Bearer <token>."
    ),
    paths(
        super::tenants::create,
        super::tenants::list,
        super::tenants::one,
        super::services::create,
        super::services::list,
        super::services::one,
        super::services::openapi,
        super::services::publish,
        super::services::deprecate,
        super::services::retire,
        super::apps::create,
        super::apps::list,
        super::apps::one,
        super::apps::create_key,
        super::apps::keys,
        super::apps::revoke_key,
        super::subscriptions::create,
        super::subscriptions::list,
        super::subscriptions::one,
        super::subscriptions::approve,
        super::subscriptions::reject,
        super::subscriptions::revoke,
        super::subscriptions::cancel,
        super::audit::list,
    ),
    components(schemas(
        model::Tenant,
        model::NewTenant,
        model::Service,
        model::NewService,
        model::Deprecate,
        model::App,
        model::NewApp,
        model::KeyInfo,
        model::NewKey,
        model::NewKeyShown,
        model::Subscription,
        model::NewSubscription,
        model::Reason,
        model::AuditEntry,
        model::NoInput
    ))
)]
pub struct AdminApi;

pub fn routes() -> Router<AdminState> {
    Router::new().route(
        "/api/v1/openapi.json",
        get(|| async { Json(AdminApi::openapi()) }),
    )
}
