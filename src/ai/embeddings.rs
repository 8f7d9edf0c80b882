//! `POST /v1/embeddings` in OpenAI's format, and its translation for each kind of provider:
//!
//! - OpenAI and compatible servers (and Azure, by deployment) take the request as it is, with the
//!   provider's model name put in;
//! - Gemini: `:batchEmbedContents`, one request per input text (`dimensions` →
//!   `outputDimensionality`); its answer has no usage, so the gateway counts the input's tokens;
//!   `encoding_format: "base64"` is done by the gateway (little-endian `f32`s, as OpenAI does);
//! - Anthropic has no embeddings API: a 400 naming the provider.

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::provider::{AZURE_API_VERSION, Kind, Outgoing, key_header, path_segment};
use super::{TranslateError, bad};

#[derive(Debug, Clone, Deserialize)]
pub struct EmbedRequest {
    pub model: String,
    pub input: Input,
    #[serde(default)]
    pub encoding_format: Option<String>,
    #[serde(default)]
    pub dimensions: Option<u64>,
}

/// What to embed: a text, texts, or (pre-tokenized) token arrays.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Input {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

impl EmbedRequest {
    /// The texts, for providers that take text only.
    pub fn texts(&self) -> Result<Vec<&str>, TranslateError> {
        match &self.input {
            Input::One(s) => Ok(vec![s.as_str()]),
            Input::Many(v) if !v.is_empty() => Ok(v.iter().map(String::as_str).collect()),
            Input::Many(_) => Err(bad("input", "must not be empty")),
            Input::Tokens(_) | Input::TokenLists(_) => Err(bad(
                "input",
                "this model's provider takes text, not token arrays",
            )),
        }
    }

    /// Tokens of the input (for providers that report none).
    pub fn tokens(&self) -> u64 {
        match &self.input {
            Input::One(s) => super::tokens::count(s),
            Input::Many(v) => v.iter().map(|s| super::tokens::count(s)).sum(),
            Input::Tokens(t) => t.len() as u64,
            Input::TokenLists(l) => l.iter().map(|t| t.len() as u64).sum(),
        }
    }

    fn base64(&self) -> Result<bool, TranslateError> {
        match self.encoding_format.as_deref() {
            None | Some("float") => Ok(false),
            Some("base64") => Ok(true),
            Some(other) => Err(bad(
                "encoding_format",
                format!("{other:?} is not one of float, base64"),
            )),
        }
    }
}

/// The embeddings request to a provider of `kind` under `base`, calling `model` with `key`.
pub fn outgoing(
    kind: &Kind,
    base: &str,
    model: &str,
    key: &str,
    req: &EmbedRequest,
    raw: &Value,
) -> Result<Outgoing, TranslateError> {
    let base = base.trim_end_matches('/');
    req.base64()?;
    let passed = || {
        let mut v = raw.clone();
        if let Some(o) = v.as_object_mut() {
            o.insert("model".into(), json!(model));
        }
        serde_json::to_vec(&v).unwrap_or_default()
    };
    Ok(match kind {
        Kind::OpenAi | Kind::Compatible { .. } => Outgoing {
            target: format!("{base}/v1/embeddings"),
            headers: key_header(kind, key).into_iter().collect(),
            body: passed(),
        },
        Kind::Azure { api_version } => Outgoing {
            target: format!(
                "{base}/openai/deployments/{}/embeddings?api-version={}",
                path_segment(model),
                path_segment(if api_version.is_empty() {
                    AZURE_API_VERSION
                } else {
                    api_version
                })
            ),
            headers: key_header(kind, key).into_iter().collect(),
            body: passed(),
        },
        Kind::Gemini => {
            let name = format!("models/{model}");
            let requests: Vec<Value> = req
                .texts()?
                .into_iter()
                .map(|t| {
                    let mut r = json!({"model": name, "content": {"parts": [{"text": t}]}});
                    if let Some(d) = req.dimensions {
                        r["outputDimensionality"] = json!(d);
                    }
                    r
                })
                .collect();
            Outgoing {
                target: format!(
                    "{base}/v1beta/models/{}:batchEmbedContents",
                    path_segment(model)
                ),
                headers: key_header(kind, key).into_iter().collect(),
                body: serde_json::to_vec(&json!({"requests": requests})).unwrap_or_default(),
            }
        }
        Kind::Anthropic => {
            return Err(bad(
                "model",
                "this model's provider (Anthropic) has no embeddings API",
            ));
        }
    })
}

/// A provider's 2xx embeddings answer in OpenAI's format, and its input tokens (`None`: the
/// provider reported none).
pub fn response(
    kind: &Kind,
    body: Vec<u8>,
    model: &str,
    req: &EmbedRequest,
) -> Result<(Vec<u8>, Option<u64>), &'static str> {
    match kind {
        Kind::Gemini => {
            #[derive(Deserialize)]
            struct R {
                embeddings: Vec<E>,
            }
            #[derive(Deserialize)]
            struct E {
                values: Vec<f32>,
            }
            let r: R = serde_json::from_slice(&body)
                .map_err(|_| "the provider's answer is not a batchEmbedContents response")?;
            let b64 = req.base64().unwrap_or(false);
            let data: Vec<Value> = r
                .embeddings
                .into_iter()
                .enumerate()
                .map(|(i, e)| {
                    let embedding = if b64 {
                        let bytes: Vec<u8> =
                            e.values.iter().flat_map(|f| f.to_le_bytes()).collect();
                        json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                    } else {
                        json!(e.values)
                    };
                    json!({"object": "embedding", "index": i, "embedding": embedding})
                })
                .collect();
            let tokens = req.tokens();
            let out = json!({"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}});
            Ok((serde_json::to_vec(&out).map_err(|_| "cannot encode")?, None))
        }
        _ => {
            #[derive(Deserialize)]
            struct Peek {
                #[serde(default)]
                usage: Option<PeekUsage>,
            }
            #[derive(Deserialize)]
            struct PeekUsage {
                #[serde(default)]
                prompt_tokens: u64,
            }
            let p: Peek = serde_json::from_slice(&body)
                .map_err(|_| "the provider's answer is not an embeddings list")?;
            Ok((body, p.usage.map(|u| u.prompt_tokens)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> (EmbedRequest, Value) {
        (serde_json::from_value(v.clone()).unwrap(), v)
    }

    #[test]
    fn openai_passes_gemini_translates_anthropic_refuses() {
        let (r, raw) = req(json!({"model": "embed", "input": ["a", "b"], "dimensions": 3}));
        let o = outgoing(&Kind::OpenAi, "", "text-embedding-3-small", "k", &r, &raw).unwrap();
        assert_eq!(o.target, "/v1/embeddings");
        let b: Value = serde_json::from_slice(&o.body).unwrap();
        assert_eq!(b["model"], "text-embedding-3-small");
        assert_eq!(b["dimensions"], 3);
        assert_eq!(o.headers, [("authorization", "Bearer k".to_string())]);
        // A provider without keys (a local server) gets no empty credential header.
        let o = outgoing(&Kind::OpenAi, "", "m", "", &r, &raw).unwrap();
        assert!(o.headers.is_empty(), "{:?}", o.headers);
        let o = outgoing(&Kind::Gemini, "", "text-embedding-004", "k", &r, &raw).unwrap();
        assert_eq!(
            o.target,
            "/v1beta/models/text-embedding-004:batchEmbedContents"
        );
        let b: Value = serde_json::from_slice(&o.body).unwrap();
        assert_eq!(b["requests"][1]["content"]["parts"][0]["text"], "b");
        assert_eq!(b["requests"][0]["model"], "models/text-embedding-004");
        assert_eq!(b["requests"][0]["outputDimensionality"], 3);
        assert!(outgoing(&Kind::Anthropic, "", "m", "k", &r, &raw).is_err());
        let (t, raw) = req(json!({"model": "e", "input": [1, 2, 3]}));
        assert!(outgoing(&Kind::Gemini, "", "m", "k", &t, &raw).is_err());
        assert!(outgoing(&Kind::OpenAi, "", "m", "k", &t, &raw).is_ok());
        assert_eq!(t.tokens(), 3);
    }

    #[test]
    fn gemini_answers_become_openai_lists() {
        let (r, _) = req(json!({"model": "embed", "input": ["a", "b"]}));
        let body = br#"{"embeddings":[{"values":[0.5,1]},{"values":[2,-1]}]}"#.to_vec();
        let (out, usage) = response(&Kind::Gemini, body.clone(), "e4", &r).unwrap();
        assert_eq!(usage, None);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["data"][1]["embedding"], json!([2.0, -1.0]));
        assert_eq!(v["data"][1]["index"], 1);
        assert_eq!(v["usage"]["prompt_tokens"], 2);
        let (r64, _) = req(json!({"model": "embed", "input": "a", "encoding_format": "base64"}));
        let (out, _) = response(&Kind::Gemini, body, "e4", &r64).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes, [0.5f32.to_le_bytes(), 1f32.to_le_bytes()].concat());
    }
}
