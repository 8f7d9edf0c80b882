//! JWT credentials end to end on both drivers: RS256 with a public key, HS256 with a sealed
//! secret, ES256 from a JWKS served over HTTP; every claim check (signature, algorithm, exp, nbf,
//! aud, iss); the per-shard cache stops serving a token once its credential is revoked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::admin::{self, Managed, call, s};
use common::{Driver, Mock, ok};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

const RS_KEY: &[u8] = include_bytes!("fixtures/jwt-rs256.key");
const RS_PUB: &str = include_str!("fixtures/jwt-rs256.pub");
const OTHER_KEY: &[u8] = include_bytes!("fixtures/jwt-other.key");

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(
    alg: Algorithm,
    kid: Option<&str>,
    key: &EncodingKey,
    claims: serde_json::Value,
) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    encode(&h, &claims, key).unwrap()
}

fn bearer(t: &str) -> String {
    format!("Authorization: Bearer {t}\r\n")
}

/// A tenant, a published jwt-only service at /j, an app subscribed to it. Returns (app, service).
fn setup(m: &Managed, up: &Mock) -> (String, String) {
    let t = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"t"}"#),
        "id",
    );
    let svc = m.ok(
        201,
        "POST",
        "/api/v1/services",
        &json!({"tenant_id": t, "name": "j", "approval": "auto", "credentials": ["jwt"],
                "routes": [{"path_prefix": "/j"}], "upstream": {"targets": [up.addr.to_string()]}})
        .to_string(),
    );
    let svc = s(&svc, "id");
    m.ok(200, "POST", &format!("/api/v1/services/{svc}/publish"), "");
    let app = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/apps",
            &json!({"tenant_id": t, "name": "a"}).to_string(),
        ),
        "id",
    );
    m.ok(
        201,
        "POST",
        "/api/v1/subscriptions",
        &json!({"app_id": app, "service_id": svc}).to_string(),
    );
    (app, svc)
}

fn rs256(driver: Driver) {
    let dir = tempfile::tempdir().unwrap();
    let up = Mock::start(|_| ok("jwt ok"));
    let m = admin::start(driver, 2, &dir.path().join("s.db"), "");
    let proxy = m.proxy();
    let (app, _) = setup(&m, &up);
    let cred = m.ok(
        201,
        "POST",
        &format!("/api/v1/apps/{app}/credentials"),
        &json!({"kind": "jwt", "issuer": "https://idp.example.com", "algorithm": "RS256",
                "public_key": RS_PUB, "audience": "orders"})
        .to_string(),
    );
    let cred = s(&cred, "id");
    m.settle();
    let key = EncodingKey::from_rsa_pem(RS_KEY).unwrap();
    let good =
        json!({"iss": "https://idp.example.com", "aud": "orders", "exp": now() + 600, "sub": "u1"});
    let t = token(Algorithm::RS256, None, &key, good.clone());
    for _ in 0..4 {
        let r = call(proxy, "/j", &bearer(&t));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let seen = up.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.header("x-ringway-app"), Some(app.as_str()));
    assert!(
        seen.header("authorization").is_none(),
        "the token is not forwarded"
    );

    let other = EncodingKey::from_rsa_pem(OTHER_KEY).unwrap();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let bad = [
        (
            "signed by another key",
            token(Algorithm::RS256, None, &other, good.clone()),
        ),
        (
            "expired",
            token(
                Algorithm::RS256,
                None,
                &key,
                with(&|c| c["exp"] = json!(now() - 120)),
            ),
        ),
        (
            "not yet valid",
            token(
                Algorithm::RS256,
                None,
                &key,
                with(&|c| c["nbf"] = json!(now() + 600)),
            ),
        ),
        (
            "another audience",
            token(
                Algorithm::RS256,
                None,
                &key,
                with(&|c| c["aud"] = json!("billing")),
            ),
        ),
        (
            "no exp",
            token(
                Algorithm::RS256,
                None,
                &key,
                with(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            ),
        ),
        (
            "unknown issuer",
            token(
                Algorithm::RS256,
                None,
                &key,
                with(&|c| c["iss"] = json!("https://evil")),
            ),
        ),
        (
            "HS256 keyed with the public key",
            token(
                Algorithm::HS256,
                None,
                &EncodingKey::from_secret(RS_PUB.as_bytes()),
                good.clone(),
            ),
        ),
        ("tampered", {
            let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
            parts[1] = base64_url(
                &json!({"iss": "https://idp.example.com", "aud": "orders", "exp": now() + 9999})
                    .to_string(),
            );
            parts.join(".")
        }),
    ];
    for (what, t) in &bad {
        let r = call(proxy, "/j", &bearer(t));
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (401, "credential_invalid"),
            "{what}"
        );
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains("invalid_token"),
            "{what}"
        );
    }
    // An API key is not accepted by a jwt-only service.
    let k = s(
        &m.ok(201, "POST", &format!("/api/v1/apps/{app}/keys"), "{}"),
        "key",
    );
    m.settle();
    assert_eq!(
        call(proxy, "/j", &format!("X-API-Key: {k}\r\n")).status,
        401
    );

    // Revoked: the cached token stops working on every shard.
    m.ok(
        200,
        "POST",
        &format!("/api/v1/apps/{app}/credentials/{cred}/revoke"),
        "",
    );
    m.settle();
    for _ in 0..4 {
        assert_eq!(call(proxy, "/j", &bearer(&t)).status, 401);
    }
    m.shutdown();
}
both_drivers!(rs256_tokens_are_verified_and_cached_until_revoked, rs256);

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[test]
fn hs256_secret_is_sealed_and_es256_comes_from_a_jwks() {
    let dir = tempfile::tempdir().unwrap();
    let up = Mock::start(|_| ok("x"));
    // An ES256 key published as a JWKS by a mock identity provider.
    let kp = rcgen::KeyPair::generate().unwrap();
    let der = kp.public_key_raw();
    assert_eq!(der[0], 4, "uncompressed P-256 point");
    let (x, y) = (
        base64_url_bytes(&der[1..33]),
        base64_url_bytes(&der[33..65]),
    );
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": "k1", "alg": "ES256", "use": "sig"}]}).to_string();
    let idp = Mock::start(move |_| ok(&jwks));
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let proxy = m.proxy();
    let (app, _) = setup(&m, &up);
    let secret = "a-shared-secret-of-at-least-32-bytes!!";
    let (st, v, _) = m.api(
        "POST",
        &format!("/api/v1/apps/{app}/credentials"),
        Some(
            &json!({"kind": "jwt", "issuer": "hs", "algorithm": "HS256", "secret": "short"})
                .to_string(),
        ),
    );
    assert_eq!(
        (st, v["error"]["fields"]["secret"].is_string()),
        (422, true)
    );
    let c = m.ok(
        201,
        "POST",
        &format!("/api/v1/apps/{app}/credentials"),
        &json!({"kind": "jwt", "issuer": "hs", "algorithm": "HS256", "secret": secret}).to_string(),
    );
    assert_eq!(c["has_secret"], true);
    assert!(!c.to_string().contains(secret));
    let (st, _, _) = m.api(
        "POST",
        &format!("/api/v1/apps/{app}/credentials"),
        Some(
            &json!({"kind": "jwt", "issuer": "hs", "algorithm": "HS256", "secret": secret})
                .to_string(),
        ),
    );
    assert_eq!(st, 409, "an issuer belongs to one live credential");
    let (st, v, _) = m.api(
        "POST",
        &format!("/api/v1/apps/{app}/credentials"),
        Some(
            &json!({"kind": "jwt", "issuer": "bad", "audience": "orders", "jwks_url": "http://127.0.0.1:1/jwks"})
                .to_string(),
        ),
    );
    assert_eq!(
        (st, v["error"]["fields"]["jwks_url"].is_string()),
        (422, true),
        "{v}"
    );
    m.ok(
        201,
        "POST",
        &format!("/api/v1/apps/{app}/credentials"),
        &json!({"kind": "jwt", "issuer": "idp", "audience": "orders", "jwks_url": format!("http://{}/jwks", idp.addr)})
            .to_string(),
    );
    m.settle();
    let hs = token(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(secret.as_bytes()),
        json!({"iss": "hs", "exp": now() + 60}),
    );
    assert_eq!(call(proxy, "/j", &bearer(&hs)).status, 200);
    let es_key = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap();
    let es = token(
        Algorithm::ES256,
        Some("k1"),
        &es_key,
        json!({"iss": "idp", "aud": "orders", "exp": now() + 60}),
    );
    assert_eq!(
        call(proxy, "/j", &bearer(&es)).status,
        200,
        "ES256 from the JWKS"
    );
    let wrong_kid = token(
        Algorithm::ES256,
        Some("k2"),
        &es_key,
        json!({"iss": "idp", "aud": "orders", "exp": now() + 60}),
    );
    assert_eq!(
        call(proxy, "/j", &bearer(&wrong_kid)).status,
        401,
        "a kid the JWKS does not have"
    );
    // The secret is not in the store file in the clear, and still works after a restart.
    m.shutdown();
    for f in std::fs::read_dir(dir.path()).unwrap() {
        // SQLite may still be removing its -wal/-shm files as the store closes.
        let Ok(bytes) = std::fs::read(f.unwrap().path()) else {
            continue;
        };
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    assert_eq!(call(m.proxy(), "/j", &bearer(&hs)).status, 200);
    assert_eq!(call(m.proxy(), "/j", &bearer(&es)).status, 200);
    m.shutdown();
}

fn base64_url_bytes(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}
