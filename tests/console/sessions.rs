//! Cookie sessions: flags, CSRF, sign-in and sign-out, the operator's sessions, expiry, throttling.

use super::*;

#[test]
fn cookie_sessions_have_safe_flags_csrf_and_an_end() {
    let dir = tempfile::tempdir().unwrap();
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let (t, email) = tenant_with_user(&m, "developer");
    let (cookie, csrf, r) = sign_in(m.admin, &json!({"email": email, "password": PASSWORD}));
    let set = r.header("set-cookie").unwrap();
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/api/v1",
        "Max-Age=43200",
    ] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(
        !set.contains("Secure"),
        "a loopback listener's cookie is not Secure by default: {set}"
    );
    let body = json_of(&r);
    assert_eq!(body["me"]["user"]["email"], email.as_str());
    assert!(
        body.get("token").is_none() && !r.text().contains("rwa_"),
        "the token stays in the cookie"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));

    // Reads need no CSRF token; changes do, and it must be this session's.
    let me = req(m.admin, "GET", "/api/v1/session", &cookie, None);
    assert_eq!(me.status, 200);
    assert_eq!(s(&json_of(&me), "csrf_token"), csrf);
    let app = json!({"tenant_id": t, "name": "one"}).to_string();
    let r = req(m.admin, "POST", "/api/v1/apps", &cookie, Some(&app));
    assert_eq!((r.status, r.error_code().as_str()), (403, "csrf_failed"));
    let wrong = format!("{cookie}X-CSRF-Token: {}\r\n", "A".repeat(43));
    let r = req(m.admin, "POST", "/api/v1/apps", &wrong, Some(&app));
    assert_eq!((r.status, r.error_code().as_str()), (403, "csrf_failed"));
    let cross = format!("{cookie}X-CSRF-Token: {csrf}\r\nSec-Fetch-Site: same-site\r\n");
    let r = req(m.admin, "POST", "/api/v1/apps", &cross, Some(&app));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "csrf_failed"),
        "another port of the same host is another origin"
    );
    let right = format!("{cookie}X-CSRF-Token: {csrf}\r\nSec-Fetch-Site: same-origin\r\n");
    let r = req(m.admin, "POST", "/api/v1/apps", &right, Some(&app));
    assert_eq!(r.status, 201, "{}", r.text());
    // Another session's token does not pass for this one.
    let (cookie2, csrf2, _) = sign_in(m.admin, &json!({"email": email, "password": PASSWORD}));
    let mixed = format!("{cookie2}X-CSRF-Token: {csrf}\r\n");
    assert_eq!(
        req(m.admin, "POST", "/api/v1/apps", &mixed, Some(&app)).status,
        403
    );

    // A bearer token needs no CSRF token (no browser sends it by itself); the bootstrap token and
    // personal tokens are not sessions and are refused as a cookie.
    assert_eq!(
        admin::api(
            m.admin,
            TOKEN,
            "POST",
            "/api/v1/apps",
            Some(&json!({"tenant_id": t, "name": "two"}).to_string())
        )
        .0,
        201
    );
    let r = req(
        m.admin,
        "GET",
        "/api/v1/me",
        &format!("Cookie: ringway_session={TOKEN}\r\n"),
        None,
    );
    assert_eq!(r.status, 401);
    let personal = admin::api(
        m.admin,
        "",
        "POST",
        "/api/v1/login",
        Some(&json!({"email": email, "password": PASSWORD}).to_string()),
    )
    .1;
    let session_tok = s(&personal, "token");
    let pt = admin::api(
        m.admin,
        &session_tok,
        "POST",
        "/api/v1/tokens",
        Some(r#"{"name":"ci","scopes":["read"]}"#),
    )
    .1;
    let r = req(
        m.admin,
        "GET",
        "/api/v1/me",
        &format!("Cookie: ringway_session={}\r\n", s(&pt, "token")),
        None,
    );
    assert_eq!((r.status, r.error_code().as_str()), (401, "session_ended"));

    // Signing out ends the session on the server, not only in the browser.
    let out = req(
        m.admin,
        "DELETE",
        "/api/v1/session",
        &format!("{cookie2}X-CSRF-Token: {csrf2}\r\n"),
        None,
    );
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = req(m.admin, "GET", "/api/v1/me", &cookie2, None);
    assert_eq!((r.status, r.error_code().as_str()), (401, "session_ended"));
    assert_eq!(
        req(m.admin, "GET", "/api/v1/me", &cookie, None).status,
        200,
        "the other session lives on"
    );

    // A disabled user's sessions end.
    let uid = s(
        &json_of(&req(m.admin, "GET", "/api/v1/session", &cookie, None))["me"]["user"],
        "id",
    );
    assert_eq!(
        admin::api(
            m.admin,
            TOKEN,
            "POST",
            &format!("/api/v1/users/{uid}/disable"),
            Some("{}")
        )
        .0,
        200
    );
    assert_eq!(req(m.admin, "GET", "/api/v1/me", &cookie, None).status, 401);
    m.shutdown();
}

#[test]
fn sign_in_is_same_origin_json_and_replaces_the_old_session() {
    let dir = tempfile::tempdir().unwrap();
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let body = json!({"token": TOKEN}).to_string();
    let r = req(
        m.admin,
        "POST",
        "/api/v1/session",
        "Sec-Fetch-Site: cross-site\r\n",
        Some(&body),
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "csrf_failed"),
        "login CSRF"
    );
    let mut c = Client::connect(m.admin);
    c.send(format!("POST /api/v1/session HTTP/1.1\r\nHost: admin\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    assert_eq!(
        c.response(false).unwrap().status,
        415,
        "a form cannot sign in"
    );
    let (first, _, _) = sign_in(m.admin, &json!({"token": TOKEN}));
    assert_eq!(req(m.admin, "GET", "/api/v1/me", &first, None).status, 200);
    // Signing in from the same browser ends the session it had.
    let r = req(m.admin, "POST", "/api/v1/session", &first, Some(&body));
    assert_eq!(r.status, 201);
    assert_eq!(req(m.admin, "GET", "/api/v1/me", &first, None).status, 401);
    let second = format!(
        "Cookie: {}\r\n",
        r.header("set-cookie").unwrap().split(';').next().unwrap()
    );
    let csrf = s(&json_of(&r), "csrf_token");
    // The older /logout ends a console session too (the operator's included).
    let out = req(
        m.admin,
        "POST",
        "/api/v1/logout",
        &format!("{second}X-CSRF-Token: {csrf}\r\n"),
        Some("{}"),
    );
    assert_eq!(out.status, 204);
    assert_eq!(req(m.admin, "GET", "/api/v1/me", &second, None).status, 401);
    m.shutdown();
}

/// Rotating the bootstrap token ends every operator session made with the old one.
#[test]
fn a_new_bootstrap_token_ends_the_old_ones_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.db");
    let m = admin::start(Driver::Uring, 1, &store, "");
    let (cookie, _, _) = sign_in(m.admin, &json!({"token": TOKEN}));
    m.shutdown();
    let config = admin::config(Driver::Uring, 1, &store, "");
    let g = ringway::Gateway::start(
        config.clone(),
        ringway::StartOptions {
            workers: None,
            cpus: Some(ringway::runtime::available_cpus().unwrap()),
        },
    )
    .unwrap();
    let cp = ringway::control::ControlPlane::start(
        &config,
        g.publisher(),
        Some(ringway::control::AdminToken::new("a-brand-new-admin-token-42").unwrap()),
    )
    .unwrap();
    let addr = cp.admin_addr().unwrap();
    assert_eq!(req(addr, "GET", "/api/v1/me", &cookie, None).status, 401);
    let (fresh, _, _) = sign_in(addr, &json!({"token": "a-brand-new-admin-token-42"}));
    assert_eq!(req(addr, "GET", "/api/v1/me", &fresh, None).status, 200);
    g.shutdown(std::time::Duration::from_secs(1));
    cp.shutdown();
}

#[test]
fn operator_sign_in_is_throttled_and_sessions_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.db");
    let mut cfg = admin::config(Driver::Uring, 1, &store, "");
    cfg.admin.as_mut().unwrap().session_ttl = std::time::Duration::from_secs(1);
    cfg.admin.as_mut().unwrap().cookie_secure = true;
    let m = admin::start_config(cfg, &store);
    let (cookie, csrf, r) = sign_in(m.admin, &json!({"token": TOKEN}));
    let set = r.header("set-cookie").unwrap();
    assert!(set.contains("Secure") && set.contains("Max-Age=1"), "{set}");
    assert_eq!(json_of(&r)["me"]["kind"], "operator");
    // The operator's session may do what the bootstrap token does.
    let r = req(
        m.admin,
        "POST",
        "/api/v1/tenants",
        &format!("{cookie}X-CSRF-Token: {csrf}\r\n"),
        Some(r#"{"name":"t1"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // It ends at its time (the server's check; a browser also drops the cookie at Max-Age).
    common::wait_for("the session to expire", || {
        req(m.admin, "GET", "/api/v1/me", &cookie, None).status == 401
    });
    assert_eq!(
        req(m.admin, "GET", "/api/v1/session", &cookie, None).error_code(),
        "session_ended"
    );
    // Wrong tokens: refused, then throttled per client address.
    let mut last = 0;
    for _ in 0..25 {
        last = req(
            m.admin,
            "POST",
            "/api/v1/session",
            "",
            Some(r#"{"token":"wrong"}"#),
        )
        .status;
        if last == 429 {
            break;
        }
        assert_eq!(last, 401);
    }
    assert_eq!(last, 429, "operator sign-ins are throttled");
    // Bad input names its field.
    let r = req(
        m.admin,
        "POST",
        "/api/v1/session",
        "",
        Some(r#"{"email":"a@b.example"}"#),
    );
    assert_eq!(r.status, 422);
    assert!(
        json_of(&r)["error"]["fields"]["password"].is_string(),
        "{}",
        r.text()
    );
    m.shutdown();
}

#[test]
fn the_operator_lists_its_sessions_and_ends_one() {
    let dir = tempfile::tempdir().unwrap();
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let (laptop, _, _) = sign_in(m.admin, &json!({"token": TOKEN}));
    let ua = "User-Agent: Mozilla/5.0 (X11; Linux) Test/1\r\n";
    let r = req(
        m.admin,
        "POST",
        "/api/v1/session",
        ua,
        Some(&json!({"token": TOKEN}).to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let phone = format!(
        "Cookie: {}\r\n",
        r.header("set-cookie").unwrap().split(';').next().unwrap()
    );
    let phone_csrf = s(&json_of(&r), "csrf_token");
    let r = req(m.admin, "GET", "/api/v1/sessions", &laptop, None);
    assert_eq!(r.status, 200, "{}", r.text());
    let items = json_of(&r)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(
        items.iter().filter(|i| i["current"] == true).count(),
        1,
        "exactly the caller's session is marked: {items:?}"
    );
    let other = items.iter().find(|i| i["current"] == false).unwrap();
    assert_eq!(other["client"], "127.0.0.1");
    assert_eq!(other["user_agent"], "Mozilla/5.0 (X11; Linux) Test/1");
    for secret in ["hash", "token", "token_fp"] {
        assert!(other.get(secret).is_none(), "{other}");
    }
    // The phone ends the laptop's session: the laptop is signed out at its next call.
    let laptop_id = s(items.iter().find(|i| i["current"] == true).unwrap(), "id");
    let end = format!("/api/v1/sessions/{laptop_id}/revoke");
    let csrf = format!("X-CSRF-Token: {phone_csrf}\r\n");
    assert_eq!(
        req(m.admin, "POST", &end, &phone, Some("{}")).status,
        403,
        "a cookie call that changes something needs its CSRF token"
    );
    let r = req(m.admin, "POST", &end, &format!("{phone}{csrf}"), Some("{}"));
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(req(m.admin, "GET", "/api/v1/me", &laptop, None).status, 401);
    assert_eq!(req(m.admin, "GET", "/api/v1/me", &phone, None).status, 200);
    let r = req(m.admin, "POST", &end, &format!("{phone}{csrf}"), Some("{}"));
    assert_eq!(r.status, 404, "ended already");
    for (bad, field) in [
        ("limit=0", "limit"),
        ("tenant_id=x", "tenant_id"),
        ("q=x", "q"),
    ] {
        let (st, v, _) = m.api("GET", &format!("/api/v1/sessions?{bad}"), None);
        assert_eq!(st, 422, "{bad}: {v}");
        assert!(v["error"]["fields"][field].is_string(), "{bad}: {v}");
    }
    let (st, v, _) = m.api("GET", "/api/v1/sessions", None);
    assert_eq!((st, v["items"].as_array().unwrap().len()), (200, 1), "{v}");
    assert_eq!(
        v["items"][0]["current"], false,
        "a bearer call has no session: {v}"
    );
    let (st, v, _) = m.api("GET", "/api/v1/audit?order=desc&limit=5", None);
    assert_eq!(st, 200);
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "session.revoke" && e["object_id"] == laptop_id.as_str()),
        "{v}"
    );
    // Users have their own sessions under /tokens; the operator's are not theirs to see or end.
    let (_, email) = tenant_with_user(&m, "owner");
    let (user, user_csrf, _) = sign_in(m.admin, &json!({"email": email, "password": PASSWORD}));
    assert_eq!(
        req(m.admin, "GET", "/api/v1/sessions", &user, None).status,
        403
    );
    let mine = json_of(&req(m.admin, "GET", "/api/v1/tokens", &user, None));
    assert_eq!(mine["items"][0]["kind"], "session", "{mine}");
    assert_eq!(mine["items"][0]["client"], "127.0.0.1", "{mine}");
    assert_eq!(
        mine["items"][0]["current"], true,
        "the call's own session: {mine}"
    );
    // Signed in a second time: each session's listing marks itself, and only itself.
    let (other, _, _) = sign_in(m.admin, &json!({"email": email, "password": PASSWORD}));
    let both = json_of(&req(m.admin, "GET", "/api/v1/tokens", &other, None));
    let items = both["items"].as_array().unwrap();
    let current: Vec<_> = items.iter().filter(|t| t["current"] == true).collect();
    assert_eq!((items.len(), current.len()), (2, 1), "{both}");
    assert_ne!(current[0]["id"], mine["items"][0]["id"], "{both}");
    let phone_id = s(
        &json_of(&req(m.admin, "GET", "/api/v1/sessions", &phone, None))["items"][0],
        "id",
    );
    let r = req(
        m.admin,
        "POST",
        &format!("/api/v1/sessions/{phone_id}/revoke"),
        &format!("{user}X-CSRF-Token: {user_csrf}\r\n"),
        Some("{}"),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(req(m.admin, "GET", "/api/v1/me", &phone, None).status, 200);
    m.shutdown();
}
