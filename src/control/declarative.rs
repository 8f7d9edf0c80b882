//! Declarative state (`ringway export`, `ringway apply FILE [--dry-run]`): the managed objects
//! of a running gateway as one JSON document, and the changes that make a gateway match one.
//!
//! Both talk to the admin API (like Kong's decK), never to the store behind the control plane's
//! back, so every change is validated, audited and published as if made by hand. Objects are
//! matched by name (tenant; service and app within their tenant; a subscription by its app and
//! `tenant/service`). Secrets are never in the document: API keys, JWT credentials and users
//! are made through the API and stay out of it.
//!
//! `apply` creates what is missing, replaces a service whose definition differs (`PUT`), moves
//! services and subscriptions to the state the file names (forward only: draft → published →
//! deprecated → retired; pending → approved | rejected; approved → revoked | cancelled), and
//! reports what the gateway has that the file does not (it deletes nothing).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The document.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    #[serde(default)]
    pub tenants: Vec<TenantDoc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantDoc {
    pub name: String,
    /// Where its services may route (the operator's to set); absent: anywhere free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_scope: Option<Value>,
    #[serde(default)]
    pub services: Vec<ServiceDoc>,
    #[serde(default)]
    pub apps: Vec<AppDoc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceDoc {
    pub name: String,
    /// The definition as `PUT /api/v1/services/{id}` takes it (without `name`).
    pub definition: serde_json::Map<String, Value>,
    /// `draft`, `published`, `deprecated` or `retired`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sunset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation_link: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppDoc {
    pub name: String,
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionDoc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionDoc {
    /// `tenant/service`.
    pub service: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeclarativeError {
    #[error("admin API {method} {path}: {message}")]
    Api {
        method: String,
        path: String,
        message: String,
    },
    #[error("{0}")]
    Plan(String),
}

/// A client of one gateway's admin API.
pub struct Admin {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Admin {
    pub fn new(base: &str, token: &str) -> Admin {
        Admin {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, DeclarativeError> {
        let err = |message: String| DeclarativeError::Api {
            method: method.to_string(),
            path: path.to_string(),
            message,
        };
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| err(e.to_string()))?;
        let mut req = self
            .http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| err(e.to_string()))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| err(e.to_string()))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = v["error"]["message"].as_str().unwrap_or(&text).to_string();
            return Err(err(format!("{status}: {msg}")));
        }
        Ok(v)
    }

    /// Every item of a list, over all pages.
    async fn all(&self, path: &str) -> Result<Vec<Value>, DeclarativeError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let p = match &cursor {
                Some(c) => format!("{path}{sep}limit=500&cursor={c}"),
                None => format!("{path}{sep}limit=500"),
            };
            let v = self.call("GET", &p, None).await?;
            out.extend(v["items"].as_array().cloned().unwrap_or_default());
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(out),
            }
        }
    }
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

/// The definition fields of a service as the API shows it.
fn definition(svc: &Value) -> serde_json::Map<String, Value> {
    let mut d = serde_json::Map::new();
    for k in [
        "visibility",
        "approval",
        "routes",
        "upstream",
        "ai",
        "credentials",
        "quota",
    ] {
        if !svc[k].is_null() {
            d.insert(k.into(), svc[k].clone());
        }
    }
    d
}

/// What the gateway has now, as the document, plus the ids behind the names.
struct Current {
    state: State,
    tenant_ids: BTreeMap<String, String>,
    service_ids: BTreeMap<(String, String), String>,
    service_by_id: BTreeMap<String, (String, String)>,
    app_ids: BTreeMap<(String, String), String>,
    /// (app id, service id) → (subscription id, state), live ones first.
    subs: BTreeMap<(String, String), (String, String)>,
}

async fn current(a: &Admin) -> Result<Current, DeclarativeError> {
    let tenants = a.all("/api/v1/tenants").await?;
    let services = a.all("/api/v1/services").await?;
    let apps = a.all("/api/v1/apps").await?;
    let subs = a.all("/api/v1/subscriptions").await?;
    let mut c = Current {
        state: State {
            version: 1,
            tenants: Vec::new(),
        },
        tenant_ids: BTreeMap::new(),
        service_ids: BTreeMap::new(),
        service_by_id: BTreeMap::new(),
        app_ids: BTreeMap::new(),
        subs: BTreeMap::new(),
    };
    let mut tenant_name = BTreeMap::new();
    for t in &tenants {
        tenant_name.insert(s(t, "id"), s(t, "name"));
        c.tenant_ids.insert(s(t, "name"), s(t, "id"));
        c.state.tenants.push(TenantDoc {
            name: s(t, "name"),
            route_scope: (!t["route_scope"].is_null()).then(|| t["route_scope"].clone()),
            ..TenantDoc::default()
        });
    }
    for v in &services {
        let Some(tn) = tenant_name.get(&s(v, "tenant_id")).cloned() else {
            continue;
        };
        let mut def = definition(v);
        if v["has_openapi"].as_bool() == Some(true) {
            let doc = a
                .call(
                    "GET",
                    &format!("/api/v1/services/{}/openapi.json", s(v, "id")),
                    None,
                )
                .await?;
            def.insert("openapi".into(), doc);
        }
        c.service_ids.insert((tn.clone(), s(v, "name")), s(v, "id"));
        c.service_by_id
            .insert(s(v, "id"), (tn.clone(), s(v, "name")));
        if let Some(t) = c.state.tenants.iter_mut().find(|t| t.name == tn) {
            t.services.push(ServiceDoc {
                name: s(v, "name"),
                definition: def,
                state: s(v, "state"),
                sunset: v["sunset_at"].as_str().map(str::to_string),
                deprecation_link: v["deprecation_link"].as_str().map(str::to_string),
            });
        }
    }
    let mut app_name = BTreeMap::new();
    for v in &apps {
        let Some(tn) = tenant_name.get(&s(v, "tenant_id")).cloned() else {
            continue;
        };
        app_name.insert(s(v, "id"), (tn.clone(), s(v, "name")));
        c.app_ids.insert((tn.clone(), s(v, "name")), s(v, "id"));
        if let Some(t) = c.state.tenants.iter_mut().find(|t| t.name == tn) {
            t.apps.push(AppDoc {
                name: s(v, "name"),
                subscriptions: Vec::new(),
            });
        }
    }
    for v in &subs {
        let (app, svc) = (s(v, "app_id"), s(v, "service_id"));
        let live = matches!(v["state"].as_str(), Some("pending" | "approved"));
        let key = (app.clone(), svc.clone());
        if live || !c.subs.contains_key(&key) {
            c.subs.insert(key, (s(v, "id"), s(v, "state")));
        }
        let (Some((tn, an)), Some((stn, sn))) = (app_name.get(&app), c.service_by_id.get(&svc))
        else {
            continue;
        };
        if !live {
            continue;
        }
        if let Some(a) = c
            .state
            .tenants
            .iter_mut()
            .find(|t| &t.name == tn)
            .and_then(|t| t.apps.iter_mut().find(|a| &a.name == an))
        {
            a.subscriptions.push(SubscriptionDoc {
                service: format!("{stn}/{sn}"),
                state: s(v, "state"),
                quota: (!v["quota"].is_null()).then(|| v["quota"].clone()),
            });
        }
    }
    Ok(c)
}

/// The managed state of the gateway behind `a`.
pub async fn export(a: &Admin) -> Result<State, DeclarativeError> {
    Ok(current(a).await?.state)
}

const SERVICE_ORDER: [&str; 4] = ["draft", "published", "deprecated", "retired"];

/// Makes the gateway behind `a` match `want` (or, with `dry_run`, only says how). Returns the
/// plan, one line per change ("+" made, "~" replaced, ">" moved, "=" left as it is, "?" in the
/// gateway but not in the file).
pub async fn apply(
    a: &Admin,
    want: &State,
    dry_run: bool,
) -> Result<Vec<String>, DeclarativeError> {
    if want.version != 1 {
        return Err(DeclarativeError::Plan(format!(
            "version {} is not 1",
            want.version
        )));
    }
    let mut cur = current(a).await?;
    let mut plan = Vec::new();
    let note = |line: String, plan: &mut Vec<String>| plan.push(line);
    for t in &want.tenants {
        if !cur.tenant_ids.contains_key(&t.name) {
            note(format!("+ tenant {}", t.name), &mut plan);
            if !dry_run {
                let v = a
                    .call("POST", "/api/v1/tenants", Some(&json!({"name": t.name})))
                    .await?;
                cur.tenant_ids.insert(t.name.clone(), s(&v, "id"));
            }
        }
    }
    for t in &want.tenants {
        let have = cur
            .state
            .tenants
            .iter()
            .find(|x| x.name == t.name)
            .and_then(|x| x.route_scope.clone());
        if have != t.route_scope {
            note(format!("> tenant {}: route scope", t.name), &mut plan);
            if !dry_run {
                let tid = cur.tenant_ids.get(&t.name).cloned().unwrap_or_default();
                let body = json!({ "scopes": t.route_scope });
                a.call(
                    "PUT",
                    &format!("/api/v1/tenants/{tid}/route-scope"),
                    Some(&body),
                )
                .await?;
            }
        }
    }
    for t in &want.tenants {
        let tid = cur.tenant_ids.get(&t.name).cloned().unwrap_or_default();
        for svc in &t.services {
            let have = cur
                .state
                .tenants
                .iter()
                .find(|x| x.name == t.name)
                .and_then(|x| x.services.iter().find(|s| s.name == svc.name))
                .cloned();
            let name = format!("{}/{}", t.name, svc.name);
            let mut body = svc.definition.clone();
            body.insert("name".into(), json!(svc.name));
            let (id, state) = match have {
                None => {
                    note(format!("+ service {name}"), &mut plan);
                    let mut create = body.clone();
                    create.insert("tenant_id".into(), json!(tid));
                    let id = if dry_run {
                        String::new()
                    } else {
                        let v = a
                            .call("POST", "/api/v1/services", Some(&Value::Object(create)))
                            .await?;
                        s(&v, "id")
                    };
                    (id, "draft".to_string())
                }
                Some(h) => {
                    let id = cur
                        .service_ids
                        .get(&(t.name.clone(), svc.name.clone()))
                        .cloned()
                        .unwrap_or_default();
                    if h.definition != svc.definition {
                        note(format!("~ service {name}: definition replaced"), &mut plan);
                        if !dry_run {
                            a.call(
                                "PUT",
                                &format!("/api/v1/services/{id}"),
                                Some(&Value::Object(body)),
                            )
                            .await?;
                        }
                    } else {
                        note(format!("= service {name}"), &mut plan);
                    }
                    (id, h.state)
                }
            };
            let from = SERVICE_ORDER.iter().position(|s| *s == state);
            let to = SERVICE_ORDER
                .iter()
                .position(|s| *s == svc.state)
                .ok_or_else(|| {
                    DeclarativeError::Plan(format!("service {name}: unknown state {:?}", svc.state))
                })?;
            let from = from.unwrap_or(0);
            if to < from && !(state == "deprecated" && svc.state == "published") {
                return Err(DeclarativeError::Plan(format!(
                    "service {name} is {state}; it cannot go back to {}",
                    svc.state
                )));
            }
            let steps: Vec<&str> = if state == "deprecated" && svc.state == "published" {
                vec!["published"]
            } else {
                SERVICE_ORDER[from + 1..=to].to_vec()
            };
            for step in steps {
                note(format!("> service {name}: {step}"), &mut plan);
                if dry_run {
                    continue;
                }
                let (action, body) = match step {
                    "published" => ("publish", json!({})),
                    "deprecated" => (
                        "deprecate",
                        json!({"sunset": svc.sunset, "link": svc.deprecation_link}),
                    ),
                    _ => ("retire", json!({})),
                };
                let mut body = body;
                if let Some(o) = body.as_object_mut() {
                    o.retain(|_, v| !v.is_null());
                }
                a.call(
                    "POST",
                    &format!("/api/v1/services/{id}/{action}"),
                    Some(&body),
                )
                .await?;
            }
            cur.service_ids
                .insert((t.name.clone(), svc.name.clone()), id);
        }
        for app in &t.apps {
            let key = (t.name.clone(), app.name.clone());
            if !cur.app_ids.contains_key(&key) {
                note(format!("+ app {}/{}", t.name, app.name), &mut plan);
                if !dry_run {
                    let v = a
                        .call(
                            "POST",
                            "/api/v1/apps",
                            Some(&json!({"tenant_id": tid, "name": app.name})),
                        )
                        .await?;
                    cur.app_ids.insert(key.clone(), s(&v, "id"));
                }
            }
        }
    }
    for t in &want.tenants {
        for app in &t.apps {
            let app_id = cur
                .app_ids
                .get(&(t.name.clone(), app.name.clone()))
                .cloned()
                .unwrap_or_default();
            for sub in &app.subscriptions {
                let (stn, sn) = sub.service.split_once('/').ok_or_else(|| {
                    DeclarativeError::Plan(format!(
                        "subscription service {:?}: expected tenant/service",
                        sub.service
                    ))
                })?;
                let svc_id = cur
                    .service_ids
                    .get(&(stn.to_string(), sn.to_string()))
                    .cloned()
                    .unwrap_or_default();
                let what = format!("subscription {}/{} → {}", t.name, app.name, sub.service);
                let have = cur.subs.get(&(app_id.clone(), svc_id.clone())).cloned();
                let (id, state) = match have.filter(|(_, st)| st == "pending" || st == "approved") {
                    Some(h) => h,
                    None if matches!(sub.state.as_str(), "pending" | "approved") => {
                        note(format!("+ {what}"), &mut plan);
                        if dry_run {
                            (String::new(), "pending".into())
                        } else {
                            let v = a
                                .call(
                                    "POST",
                                    "/api/v1/subscriptions",
                                    Some(&json!({"app_id": app_id, "service_id": svc_id})),
                                )
                                .await?;
                            (s(&v, "id"), s(&v, "state"))
                        }
                    }
                    None => continue,
                };
                let action = match (state.as_str(), sub.state.as_str()) {
                    (a, b) if a == b => None,
                    ("pending", "approved") => Some("approve"),
                    ("pending", "rejected") => Some("reject"),
                    ("approved", "revoked") => Some("revoke"),
                    (_, "cancelled") => Some("cancel"),
                    (a, b) => {
                        return Err(DeclarativeError::Plan(format!(
                            "{what} is {a}; it cannot become {b}"
                        )));
                    }
                };
                if let Some(action) = action {
                    note(format!("> {what}: {}", sub.state), &mut plan);
                    if !dry_run {
                        let body = match (action, &sub.quota) {
                            ("approve", Some(q)) => json!({"quota": q}),
                            _ => json!({}),
                        };
                        a.call(
                            "POST",
                            &format!("/api/v1/subscriptions/{id}/{action}"),
                            Some(&body),
                        )
                        .await?;
                    }
                }
            }
        }
    }
    // What the gateway has that the file does not: reported, never deleted.
    for t in &cur.state.tenants {
        let Some(wt) = want.tenants.iter().find(|w| w.name == t.name) else {
            plan.push(format!(
                "? tenant {} is not in the file (left alone)",
                t.name
            ));
            continue;
        };
        for svc in &t.services {
            if !wt.services.iter().any(|w| w.name == svc.name) {
                plan.push(format!(
                    "? service {}/{} is not in the file (left alone)",
                    t.name, svc.name
                ));
            }
        }
        for app in &t.apps {
            if !wt.apps.iter().any(|w| w.name == app.name) {
                plan.push(format!(
                    "? app {}/{} is not in the file (left alone)",
                    t.name, app.name
                ));
            }
        }
    }
    Ok(plan)
}
