//! The official `openai` and `anthropic` Python SDKs against the gateway: the unified API (chat
//! whole and streamed, tools, JSON mode, models, embeddings, errors) over mock providers of each
//! kind, and the native Anthropic route. The scripts are in `tests/sdk/`; the interpreter is
//! `$RINGWAY_PYTHON`, else the repository's `.venv` (made by `.ci/run` from
//! `tests/sdk/requirements.txt`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::providers;
use common::*;

fn run(script: &str, base: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(script);
    let out = Command::new(python())
        .arg(&path)
        .arg(base)
        .arg("sk-client-key")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{script} failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn config(oa: &Mock, an: &Mock, ge: &Mock, dir: &tempfile::TempDir) -> String {
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "sk-provider\n").unwrap();
    let k = keys.display();
    format!(
        r#"
        [ai.providers.oa]
        kind = "compatible"
        base_url = "http://{oa}"
        keys_file = "{k}"
        [ai.providers.an]
        kind = "anthropic"
        base_url = "http://{an}"
        keys_file = "{k}"
        [ai.providers.ge]
        kind = "gemini"
        base_url = "http://{ge}"
        keys_file = "{k}"
        [ai.models.fast]
        targets = [{{ provider = "oa", model = "gpt-4o-mini" }}]
        [ai.models.claude]
        targets = [{{ provider = "an", model = "claude-haiku-4-5" }}]
        [ai.models.gem]
        targets = [{{ provider = "ge", model = "gemini-2.5-flash" }}]
        [ai.models.embed]
        targets = [{{ provider = "oa", model = "text-embedding-3-small" }}]
        [[routes]]
        name = "ai"
        path_prefix = "/ai"
        ai = {{}}
        [[routes]]
        name = "anthropic"
        path_prefix = "/anthropic"
        ai = {{ provider = "an" }}
        "#,
        oa = oa.addr,
        an = an.addr,
        ge = ge.addr,
    )
}

both_drivers!(official_sdks, |d| {
    let (oa, an, ge) = (
        providers::start(providers::openai),
        providers::start(providers::anthropic),
        providers::start(providers::gemini),
    );
    let dir = tempfile::tempdir().unwrap();
    let g = gateway(d, &config(&oa, &an, &ge, &dir));
    let a = addr(&g);
    run("openai_sdk.py", &format!("http://{a}/ai/v1"));
    run("anthropic_sdk.py", &format!("http://{a}/anthropic"));
    // The client's key never reaches a provider; the provider's own key does.
    for m in [&oa, &an, &ge] {
        for r in m.requests() {
            assert!(
                !r.headers.iter().any(|(_, v)| v.contains("sk-client-key")),
                "{r:?}"
            );
        }
    }
    assert!(
        an.requests()
            .iter()
            .all(|r| r.header("x-api-key") == Some("sk-provider"))
    );
});
