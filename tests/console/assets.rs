//! The page and its assets: embedded, revalidated, under a strict policy.

use super::*;

#[test]
fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let page = req(m.admin, "GET", "/", "", None);
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().contains("/assets/js/app.js"));
    let csp = page.header("content-security-policy").unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    // The page has no inline script or style for the policy to allow.
    let html = page.text();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "{html}"
    );
    // Assets revalidate by ETag.
    let js = req(m.admin, "GET", "/assets/js/app.js", "", None);
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    let tag = js.header("etag").unwrap().to_string();
    let again = req(
        m.admin,
        "GET",
        "/assets/js/app.js",
        &format!("If-None-Match: {tag}\r\n"),
        None,
    );
    assert_eq!(again.status, 304);
    let lib = req(m.admin, "GET", "/assets/vendor/uplot/LICENSE", "", None);
    assert!(
        lib.text().contains("MIT"),
        "the vendored library ships its licence"
    );
    let missing = req(m.admin, "GET", "/assets/nope.js", "", None);
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (404, "not_found")
    );
    // The API's answers carry the policy too.
    let api = req(m.admin, "GET", "/api/v1/me", "", None);
    assert_eq!(api.status, 401);
    assert!(api.header("content-security-policy").is_some());
    m.shutdown();
}
