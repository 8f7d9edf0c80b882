//! Path normalization through real sockets, on both drivers: a route guarding `/admin` cannot be
//! reached by another spelling of the path, the upstream gets the path as routed (or as sent, when
//! configured), and refused paths get 400 `bad_path` with the JSON error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

fn config(up: std::net::SocketAddr, normalize: &str) -> String {
    format!(
        r#"
        [http.normalize]
        {normalize}
        {}
        [[routes]]
        name = "admin"
        path_prefix = "/admin"
        respond = {{ status = 403, body = "no" }}
        [[routes]]
        name = "strip"
        path_prefix = "/v1/"
        rewrite_prefix = "/"
        upstream = "be"
        [[routes]]
        path_prefix = "/"
        upstream = "be"
        "#,
        upstream("be", up)
    )
}

both_drivers!(
    other_spellings_of_a_guarded_path_do_not_reach_the_upstream,
    |d| {
        let up = Mock::ok("upstream");
        let g = gateway(d, &config(up.addr, ""));
        for path in [
            "/admin",
            "/%61dmin",
            "/%61%64%6D%69%6E/x",
            "//admin",
            "///admin//users",
        ] {
            let r = get(addr(&g), path);
            assert_eq!((r.status, r.text()), (403, "no".into()), "{path}");
        }
        for path in [
            "/./admin",
            "/x/../admin",
            "/%2e/admin",
            "/%2E%2e/admin",
            "/admin%2fx",
            "/a\\b",
            "/%zz",
        ] {
            let r = get(addr(&g), path);
            assert_eq!(r.status, 400, "{path}");
            assert_eq!(r.error_code(), "bad_path", "{path}");
            assert!(r.header("x-request-id").is_some());
        }
        assert!(
            up.requests().is_empty(),
            "a spelling of /admin reached the upstream"
        );
    }
);

both_drivers!(the_upstream_gets_the_routed_path, |d| {
    let up = Mock::ok("upstream");
    let g = gateway(d, &config(up.addr, ""));
    assert_eq!(get(addr(&g), "/a//b/%7euser/%e2%82%ac?q=//%61").status, 200);
    assert_eq!(up.last().target, "/a/b/~user/%E2%82%AC?q=//%61");
    assert_eq!(get(addr(&g), "/v1//%75sers").status, 200);
    assert_eq!(up.last().target, "/users");
    // Already normal: forwarded byte for byte.
    assert_eq!(get(addr(&g), "/plain/path?x=%7e").status, 200);
    assert_eq!(up.last().target, "/plain/path?x=%7e");
});

both_drivers!(forward_original_and_resolve_options, |d| {
    let up = Mock::ok("upstream");
    let g = gateway(
        d,
        &config(
            up.addr,
            "forward = \"original\"\ndot_segments = \"resolve\"\nencoded_separators = \"keep\"",
        ),
    );
    assert_eq!(get(addr(&g), "/a/./b/../c//%64").status, 200);
    assert_eq!(up.last().target, "/a/./b/../c//%64", "forwarded as sent");
    assert_eq!(
        get(addr(&g), "/x/%2e%2e/admin").status,
        403,
        "resolved before routing"
    );
    assert_eq!(get(addr(&g), "/../admin").status, 400, "above the root");
    assert_eq!(get(addr(&g), "/a%2fb").status, 200);
    assert_eq!(up.last().target, "/a%2fb");
    // A prefix rewrite works on the routed path, whatever `forward` says.
    assert_eq!(get(addr(&g), "/v1/./x").status, 200);
    assert_eq!(up.last().target, "/x");
});

both_drivers!(merge_slashes_off_keeps_them, |d| {
    let up = Mock::ok("upstream");
    let g = gateway(d, &config(up.addr, "merge_slashes = false"));
    assert_eq!(get(addr(&g), "//admin").status, 200, "not the /admin route");
    assert_eq!(up.last().target, "//admin");
});

#[test]
fn bad_normalize_options_name_the_field() {
    for (text, field) in [
        (
            "[http.normalize]\nforward = \"raw\"\n",
            "http.normalize.forward",
        ),
        (
            "[http.normalize]\ndot_segments = \"allow\"\n",
            "dot_segments",
        ),
        ("[http.normalize]\nmerge = true\n", "merge"),
    ] {
        let e = ringway::Config::from_toml(&format!(
            "{text}[[routes]]\nrespond = {{ status = 200 }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains(field), "{text}: {e}");
    }
}
