//! `/api/v1/openapi.json`: the admin API's OpenAPI document, generated from the handlers.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use super::AdminState;
use super::{
    ai, ai_limits, analytics, apps, audit, credentials, services, session, subscriptions, tenants,
    tryit, users,
};
use crate::control::model;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ringway admin API",
        description = "Tenants, users, services, apps, keys and subscriptions of a Ringway gateway. Every call but /login needs Authorization: Bearer <token>."
    ),
    paths(
        ai::providers,
        ai::add_key,
        ai::delete_key,
        ai::models,
        ai::prices,
        ai::set_price,
        ai::delete_price,
        ai_limits::set_app,
        ai_limits::clear_app,
        ai_limits::set_tenant,
        ai_limits::clear_tenant,
        analytics::series,
        analytics::top,
        analytics::errors,
        analytics::calls,
        tenants::create,
        tenants::list,
        tenants::one,
        tenants::delete,
        tenants::route_scope,
        services::delete,
        apps::delete,
        services::create,
        services::update,
        services::list,
        services::one,
        services::openapi,
        services::publish,
        services::deprecate,
        services::retire,
        tryit::try_call,
        session::sign_in,
        session::current,
        session::sign_out,
        apps::create,
        apps::list,
        apps::one,
        apps::create_key,
        apps::keys,
        apps::revoke_key,
        subscriptions::create,
        subscriptions::list,
        subscriptions::one,
        subscriptions::approve,
        subscriptions::reject,
        subscriptions::revoke,
        subscriptions::cancel,
        audit::list,
        users::create,
        users::list,
        users::one,
        users::disable,
        users::password,
        users::update,
        users::login,
        users::logout,
        users::me,
        users::create_token,
        users::tokens,
        users::revoke_token,
        credentials::create,
        credentials::list,
        credentials::revoke,
    ),
    components(schemas(
        model::Tenant,
        model::NewTenant,
        model::RouteScope,
        model::RouteScopes,
        model::Service,
        model::NewService,
        model::ServiceUpdate,
        model::Deprecate,
        model::App,
        model::NewApp,
        model::KeyInfo,
        model::NewKey,
        model::NewKeyShown,
        model::Subscription,
        model::NewSubscription,
        model::Reason,
        model::Approve,
        model::Quota,
        model::AuditEntry,
        model::NoInput,
        model::User,
        model::NewUser,
        model::UserUpdate,
        model::NewPassword,
        model::Login,
        model::TokenInfo,
        model::NewToken,
        model::NewTokenShown,
        users::Session,
        users::Me,
        model::Credential,
        model::NewCredential,
        credentials::NewBasicShown,
        credentials::NewHmacShown,
    ))
)]
pub struct AdminApi;

pub fn routes() -> Router<AdminState> {
    Router::new().route(
        "/api/v1/openapi.json",
        get(|| async { Json(AdminApi::openapi()) }),
    )
}
