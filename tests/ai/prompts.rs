//! Prompts published as REST APIs; AI config errors that name the field.

use super::*;

both_drivers!(prompts_are_published_as_rest_apis, |d| {
    let up = providers::start(providers::openai);
    let dir = tempfile::tempdir().unwrap();
    let mut text = config(
        &dir,
        &[p("oa", "openai", up.addr, &["k"])],
        &[("fast", &[("oa", "gpt-4o-mini")])],
    );
    text.push_str(
        r#"
[[routes]]
name = "translate"
path_exact = "/translate"
[routes.ai.prompt]
model = "fast"
system = "Translate into {{language}}. Answer with the translation only."
user = "{{text}}"
params = { temperature = 0.2, max_tokens = 100 }
[routes.ai.prompt.variables]
text = { max_length = 1000 }
language = { enum = ["French", "German"], default = "French" }
"#,
    );
    let g = gateway(d, &text);
    let a = addr(&g);
    let r = post(
        a,
        "/translate",
        &json!({"text": "Good morning", "language": "German"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["output"], "Hello world", "{v}");
    assert_eq!(v["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], COMPLETION_TOKENS);
    let sent = providers::body_json(&up.last());
    assert_eq!(
        sent["messages"][0]["content"],
        "Translate into German. Answer with the translation only."
    );
    assert_eq!(sent["messages"][1]["content"], "Good morning");
    assert_eq!(sent["temperature"], 0.2);
    assert_eq!(sent["max_tokens"], 100);
    assert_eq!(sent["model"], "gpt-4o-mini");
    // Streamed on request.
    let r = post(a, "/translate", &json!({"text": "Hi", "stream": true}));
    assert_eq!(r.status, 200);
    assert_eq!(streamed(&r.body).0, "Hello world");
    assert_eq!(
        providers::body_json(&up.last())["messages"][0]["content"],
        "Translate into French. Answer with the translation only.",
        "the default"
    );
    // Bad input: 400 naming the variable, nothing sent.
    let before = up.requests().len();
    for (body, field) in [
        (json!({}), "text"),
        (json!({"text": "x", "language": "Klingon"}), "language"),
        (json!({"text": 3}), "text"),
        (json!({"text": "x", "tone": "dry"}), "tone"),
    ] {
        let r = post(a, "/translate", &body);
        assert_eq!(r.status, 400, "{body}");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field}:")),
            "{body}: {v}"
        );
    }
    assert_eq!(up.requests().len(), before);
    let r = raw_request(a, b"GET /translate HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(r.status, 405);
});

#[test]
fn bad_ai_config_names_the_field() {
    let base = "[ai.providers.oa]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1\"\n[ai.models.fast]\ntargets = [{ provider = \"oa\", model = \"m\" }]\n";
    for (extra, field) in [
        ("[ai.providers.x]\nkind = \"bard\"\n", "ai.providers.x.kind"),
        (
            "[ai.providers.x]\nkind = \"compatible\"\n",
            "ai.providers.x.base_url",
        ),
        (
            "[ai.providers.x]\nkind = \"openai\"\nbase_url = \"ftp://h\"\n",
            "ai.providers.x.base_url",
        ),
        (
            "[ai.providers.x]\nkind = \"openai\"\nkeys_env = [\"RINGWAY_TEST_UNSET_VAR\"]\n",
            "ai.providers.x.keys_env[0]",
        ),
        (
            "[ai.providers.x]\nkind = \"openai\"\napi_version = \"1\"\n",
            "ai.providers.x.api_version",
        ),
        (
            "[ai.models.y]\ntargets = [{ provider = \"nope\", model = \"m\" }]\n",
            "ai.models.y.targets[0].provider",
        ),
        ("[ai.models.y]\ntargets = []\n", "ai.models.y.targets"),
        (
            "[ai.models.y]\nstrategy = \"random\"\ntargets = [{ provider = \"oa\", model = \"m\" }]\n",
            "ai.models.y.strategy",
        ),
        (
            "[ai.prices.m]\ninput = \"cheap\"\noutput = 1\n",
            "ai.prices.\"m\".input",
        ),
        (
            "[ai]\nreserve_output_tokens = 0\n",
            "ai.reserve_output_tokens",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nai = { models = [\"nope\"] }\n",
            "routes[0].ai.models[0]",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nai = { provider = \"nope\" }\n",
            "routes[0].ai.provider",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nai = { limits = { tokens_per_day = 0 } }\n",
            "routes[0].ai.limits.tokens_per_day",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nai = { limits = {} }\n",
            "routes[0].ai.limits",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nupstream_host = \"h\"\nai = {}\n",
            "routes[0].ai",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nai = { prompt = { model = \"nope\", user = \"x\" } }\n",
            "routes[0].ai.prompt.model",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nai = { prompt = { model = \"fast\", user = \"{{x}}\" } }\n",
            "routes[0].ai.prompt.variables",
        ),
    ] {
        let text = format!("{base}{extra}");
        let text = if text.contains("[[routes]]") {
            text
        } else {
            format!("{text}[[routes]]\npath_prefix = \"/\"\nai = {{}}\n")
        };
        // A table after [[routes]] would belong to the route: put [ai] tables first.
        let text = if let Some(rest) = extra.strip_prefix("[ai]\n") {
            format!("[ai]\n{rest}{base}[[routes]]\npath_prefix = \"/\"\nai = {{}}\n")
        } else {
            text
        };
        match ringway::Config::from_toml(&text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(ringway::config::ConfigError::Invalid { field: f, .. }) => {
                assert_eq!(f, field, "{text}")
            }
            Err(e) => panic!("{e}\n{text}"),
        }
    }
}
