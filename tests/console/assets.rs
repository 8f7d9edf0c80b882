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

#[test]
fn scripts_styles_and_the_page_go_gzipped_to_clients_that_take_it() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let mut total = (0, 0);
    for path in [
        "/",
        "/assets/js/app.js",
        "/assets/app.css",
        "/assets/vendor/uplot/uPlot.iife.min.js",
    ] {
        let plain = req(m.admin, "GET", path, "", None);
        let gz = req(
            m.admin,
            "GET",
            path,
            "Accept-Encoding: gzip, deflate, br\r\n",
            None,
        );
        assert_eq!((plain.status, gz.status), (200, 200), "{path}");
        assert_eq!(plain.header("content-encoding"), None, "{path}");
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(gz.header("vary"), Some("accept-encoding"), "{path}");
        assert_eq!(plain.header("vary"), Some("accept-encoding"), "{path}");
        assert_eq!(gz.header("content-type"), plain.header("content-type"));
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&gz.body[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, plain.body, "{path}");
        assert!(gz.body.len() < plain.body.len(), "{path}");
        total = (total.0 + plain.body.len(), total.1 + gz.body.len());
        // One ETag per representation, and each revalidates.
        let (pt, gt) = (plain.header("etag").unwrap(), gz.header("etag").unwrap());
        assert_ne!(pt, gt, "{path}");
        let again = req(
            m.admin,
            "GET",
            path,
            &format!("Accept-Encoding: gzip\r\nIf-None-Match: {gt}\r\n"),
            None,
        );
        assert_eq!(
            (again.status, again.header("etag")),
            (304, Some(gt)),
            "{path}"
        );
        let refused = req(
            m.admin,
            "GET",
            path,
            "Accept-Encoding: br, gzip;q=0\r\n",
            None,
        );
        assert_eq!(refused.header("content-encoding"), None, "{path}");
        assert_eq!(refused.body, plain.body, "{path}");
    }
    eprintln!("plain {} bytes, gzipped {} bytes", total.0, total.1);
    // An image and the licence are sent as they are.
    let svg = req(
        m.admin,
        "GET",
        "/assets/favicon.svg",
        "Accept-Encoding: gzip\r\n",
        None,
    );
    assert_eq!((svg.status, svg.header("content-encoding")), (200, None));
    m.shutdown();
}
