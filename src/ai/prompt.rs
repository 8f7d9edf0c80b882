//! Prompts published as REST APIs: a template (system and user messages with `{{variables}}`),
//! the model alias it calls with its parameters, and the typed variables its callers send.
//!
//! ```json
//! {"model": "fast",
//!  "system": "You translate into {{language}}. Answer with the translation only.",
//!  "user": "{{text}}",
//!  "variables": {"text": {"type": "string", "max_length": 20000},
//!                "language": {"type": "string", "enum": ["French", "German"], "default": "French"}},
//!  "params": {"temperature": 0.2, "max_tokens": 500},
//!  "response": "text"}
//! ```
//!
//! A call is `POST {"text": "...", "language": "German"}` (and optionally `"stream": true`): each
//! variable is checked against its declaration (400 naming it), the template rendered, and the
//! model called. The answer is `{"output": ..., "finish_reason", "usage", "model"}`, `output`
//! being the text, or (`"response": "json"`, which asks the model for JSON) the parsed JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{TranslateError, bad};

/// Longest template part.
const MAX_TEMPLATE: usize = 100_000;
/// Most variables a prompt declares.
const MAX_VARIABLES: usize = 64;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrompt {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub user: String,
    #[serde(default)]
    pub variables: BTreeMap<String, RawVariable>,
    /// Chat parameters: temperature, top_p, max_tokens, stop, seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
    /// `text` (default) or `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawVariable {
    /// `string` (default), `integer`, `number` or `boolean`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Default true unless a default is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Strings: the values allowed.
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Integer,
    Number,
    Boolean,
}

#[derive(Debug, Clone, PartialEq)]
struct Variable {
    kind: Kind,
    required: bool,
    default: Option<Value>,
    one_of: Option<Vec<String>>,
    max_length: Option<usize>,
    min: Option<f64>,
    max: Option<f64>,
}

/// A piece of a template: text, or a variable to put in.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Var(String),
}

/// A validated prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// The model alias it calls.
    pub model: String,
    system: Option<Vec<Piece>>,
    user: Vec<Piece>,
    variables: BTreeMap<String, Variable>,
    params: Map<String, Value>,
    pub json: bool,
}

/// A prompt's variable as the console lists it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct VariableView {
    pub name: String,
    /// `string`, `integer`, `number` or `boolean`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub required: bool,
}

impl Prompt {
    /// Its variables, by name.
    pub fn variables(&self) -> Vec<VariableView> {
        self.variables
            .iter()
            .map(|(name, v)| VariableView {
                name: name.clone(),
                kind: match v.kind {
                    Kind::String => "string",
                    Kind::Integer => "integer",
                    Kind::Number => "number",
                    Kind::Boolean => "boolean",
                },
                required: v.required,
            })
            .collect()
    }
}

/// What a call renders to.
#[derive(Debug)]
pub struct Rendered {
    /// A chat request body in OpenAI's format.
    pub body: Value,
    pub stream: bool,
}

const PARAMS: [&str; 7] = [
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "user",
];

fn parse_template(field: &str, t: &str) -> Result<Vec<Piece>, TranslateError> {
    if t.len() > MAX_TEMPLATE {
        return Err(bad(field, format!("longer than {MAX_TEMPLATE} bytes")));
    }
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        if i > 0 {
            out.push(Piece::Text(rest[..i].to_string()));
        }
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            return Err(bad(field, "a {{ without its }}"));
        };
        let name = after[..j].trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(bad(
                field,
                format!("{{{{{name}}}}}: variable names use letters, digits and _"),
            ));
        }
        out.push(Piece::Var(name.to_string()));
        rest = &after[j + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

impl Prompt {
    /// Validates a prompt definition; errors name the field (`prompt.variables.text.type`).
    pub fn new(r: &RawPrompt) -> Result<Prompt, TranslateError> {
        let system = r
            .system
            .as_deref()
            .map(|s| parse_template("prompt.system", s))
            .transpose()?;
        let user = parse_template("prompt.user", &r.user)?;
        if r.variables.len() > MAX_VARIABLES {
            return Err(bad(
                "prompt.variables",
                format!("at most {MAX_VARIABLES} variables"),
            ));
        }
        let mut variables = BTreeMap::new();
        for (name, v) in &r.variables {
            let f = |k: &str| format!("prompt.variables.{name}.{k}");
            if name.is_empty()
                || name == "stream"
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(bad(
                    format!("prompt.variables.{name}"),
                    "variable names use letters, digits and _ (and `stream` is taken)",
                ));
            }
            let kind = match v.kind.as_deref() {
                None | Some("string") => Kind::String,
                Some("integer") => Kind::Integer,
                Some("number") => Kind::Number,
                Some("boolean") => Kind::Boolean,
                Some(other) => {
                    return Err(bad(
                        f("type"),
                        format!("{other:?} is not one of string, integer, number, boolean"),
                    ));
                }
            };
            if (v.one_of.is_some() || v.max_length.is_some()) && kind != Kind::String {
                return Err(bad(f("enum"), "enum and max_length apply to strings"));
            }
            if (v.min.is_some() || v.max.is_some()) && !matches!(kind, Kind::Integer | Kind::Number)
            {
                return Err(bad(f("min"), "min and max apply to numbers"));
            }
            let var = Variable {
                kind,
                required: v.required.unwrap_or(v.default.is_none()),
                default: None,
                one_of: v.one_of.clone(),
                max_length: v.max_length,
                min: v.min,
                max: v.max,
            };
            let default = match &v.default {
                Some(d) => Some(var.check(&f("default"), d)?),
                None => None,
            };
            variables.insert(name.clone(), Variable { default, ..var });
        }
        for p in system.iter().flatten().chain(user.iter()) {
            if let Piece::Var(n) = p {
                if !variables.contains_key(n) {
                    return Err(bad(
                        "prompt.variables",
                        format!("the template uses {{{{{n}}}}}, which is not declared"),
                    ));
                }
            }
        }
        let mut params = Map::new();
        for (k, v) in r.params.iter().flatten() {
            if !PARAMS.contains(&k.as_str()) {
                return Err(bad(
                    format!("prompt.params.{k}"),
                    format!("not one of {}", PARAMS.join(", ")),
                ));
            }
            params.insert(k.clone(), v.clone());
        }
        let json = match r.response.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(bad(
                    "prompt.response",
                    format!("{other:?} is not one of text, json"),
                ));
            }
        };
        let p = Prompt {
            model: r.model.clone(),
            system,
            user,
            variables,
            params,
            json,
        };
        // The parameters must make a valid chat request.
        let probe = p.body(&BTreeMap::new(), false);
        serde_json::from_value::<super::openai::ChatRequest>(probe)
            .map_err(|e| bad("prompt.params", e.to_string()))?;
        Ok(p)
    }

    fn body(&self, values: &BTreeMap<&str, String>, stream: bool) -> Value {
        let render = |pieces: &[Piece]| -> String {
            pieces
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => t.as_str(),
                    Piece::Var(n) => values.get(n.as_str()).map_or("", String::as_str),
                })
                .collect()
        };
        let mut messages = Vec::new();
        let mut system = self.system.as_deref().map(render);
        let user = render(&self.user);
        // OpenAI refuses JSON mode unless the messages ask for JSON in words.
        let says_json = |t: &Option<String>| {
            t.as_deref()
                .is_some_and(|t| t.to_ascii_lowercase().contains("json"))
        };
        if self.json && !says_json(&system) && !user.to_ascii_lowercase().contains("json") {
            let ask = "Respond with a single JSON object.";
            system = Some(match system {
                Some(s) => format!("{s}\n\n{ask}"),
                None => ask.into(),
            });
        }
        if let Some(s) = system {
            messages.push(json!({"role": "system", "content": s}));
        }
        messages.push(json!({"role": "user", "content": user}));
        let mut body = self.params.clone();
        body.insert("model".into(), json!(self.model));
        body.insert("messages".into(), Value::Array(messages));
        if stream {
            body.insert("stream".into(), json!(true));
        }
        if self.json {
            body.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Value::Object(body)
    }

    /// Checks a call's input and renders the chat request it makes.
    pub fn render(&self, input: &Value) -> Result<Rendered, TranslateError> {
        let Some(obj) = input.as_object() else {
            return Err(bad(
                "",
                "the body must be a JSON object of the prompt's variables",
            ));
        };
        for k in obj.keys() {
            if k != "stream" && !self.variables.contains_key(k) {
                return Err(bad(k.as_str(), "is not a variable of this prompt"));
            }
        }
        let stream = match obj.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad("stream", "must be true or false")),
        };
        let mut values = BTreeMap::new();
        for (name, var) in &self.variables {
            let v = match (obj.get(name), &var.default) {
                (Some(v), _) if !v.is_null() => var.check(name, v)?,
                (_, Some(d)) => d.clone(),
                (_, None) if var.required => return Err(bad(name.as_str(), "is required")),
                (_, None) => Value::String(String::new()),
            };
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            values.insert(name.as_str(), text);
        }
        Ok(Rendered {
            body: self.body(&values, stream),
            stream,
        })
    }

    /// The answer of a call: the chat completion `out` reshaped for the prompt's callers.
    pub fn answer(&self, out: &[u8]) -> Option<Vec<u8>> {
        let v: Value = serde_json::from_slice(out).ok()?;
        let choice = &v["choices"][0];
        let text = choice["message"]["content"].as_str().unwrap_or("");
        let output = if self.json {
            let t = text.trim();
            let t = t
                .strip_prefix("```json")
                .or_else(|| t.strip_prefix("```"))
                .and_then(|t| t.strip_suffix("```"))
                .unwrap_or(t);
            serde_json::from_str(t.trim()).unwrap_or_else(|_| Value::String(text.to_string()))
        } else {
            Value::String(text.to_string())
        };
        serde_json::to_vec(
            &json!({"output": output, "finish_reason": choice["finish_reason"],
            "usage": v["usage"], "model": v["model"]}),
        )
        .ok()
    }
}

impl Variable {
    /// `v` as this variable takes it, or why not (naming `field`).
    fn check(&self, field: &str, v: &Value) -> Result<Value, TranslateError> {
        match self.kind {
            Kind::String => {
                let Some(s) = v.as_str() else {
                    return Err(bad(field, "must be a string"));
                };
                if self.max_length.is_some_and(|m| s.chars().count() > m) {
                    return Err(bad(
                        field,
                        format!("is longer than {} characters", self.max_length.unwrap_or(0)),
                    ));
                }
                if let Some(allowed) = &self.one_of {
                    if !allowed.iter().any(|a| a == s) {
                        return Err(bad(field, format!("must be one of {}", allowed.join(", "))));
                    }
                }
                Ok(v.clone())
            }
            Kind::Boolean => v
                .as_bool()
                .map(Value::Bool)
                .ok_or_else(|| bad(field, "must be true or false")),
            Kind::Integer | Kind::Number => {
                let n = match self.kind {
                    Kind::Integer => v.as_i64().map(|i| i as f64),
                    _ => v.as_f64(),
                };
                let Some(n) = n else {
                    return Err(bad(
                        field,
                        if self.kind == Kind::Integer {
                            "must be an integer"
                        } else {
                            "must be a number"
                        },
                    ));
                };
                if self.min.is_some_and(|m| n < m) || self.max.is_some_and(|m| n > m) {
                    return Err(bad(
                        field,
                        format!(
                            "must be from {} to {}",
                            self.min.map_or("-∞".into(), |m| m.to_string()),
                            self.max.map_or("∞".into(), |m| m.to_string())
                        ),
                    ));
                }
                Ok(v.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(v: Value) -> Result<Prompt, TranslateError> {
        Prompt::new(&serde_json::from_value(v).unwrap())
    }

    fn translate() -> Prompt {
        prompt(
            json!({"model": "fast", "system": "Translate into {{language}}.", "user": "{{ text }}",
            "variables": {"text": {"max_length": 10},
                          "language": {"enum": ["French", "German"], "default": "French"},
                          "n": {"type": "integer", "min": 1, "max": 3, "required": false}},
            "params": {"temperature": 0.2, "max_tokens": 50}}),
        )
        .unwrap()
    }

    #[test]
    fn renders_checked_input() {
        let p = translate();
        let r = p.render(&json!({"text": "hello"})).unwrap();
        assert!(!r.stream);
        assert_eq!(r.body["messages"][0]["content"], "Translate into French.");
        assert_eq!(r.body["messages"][1]["content"], "hello");
        assert_eq!(r.body["temperature"], 0.2);
        assert_eq!(r.body["model"], "fast");
        let r = p
            .render(&json!({"text": "hi", "language": "German", "n": 2, "stream": true}))
            .unwrap();
        assert!(r.stream);
        assert_eq!(r.body["messages"][0]["content"], "Translate into German.");
    }

    #[test]
    fn json_mode_asks_for_json_in_words() {
        let p = prompt(
            json!({"model": "fast", "user": "Describe {{thing}}.", "response": "json",
            "variables": {"thing": {}}}),
        )
        .unwrap();
        let r = p.render(&json!({"thing": "a cat"})).unwrap();
        assert_eq!(r.body["response_format"]["type"], "json_object");
        assert_eq!(r.body["messages"][0]["role"], "system");
        assert!(
            r.body["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("JSON")
        );
        // A template that says JSON already is left as written.
        let p = prompt(
            json!({"model": "fast", "system": "Answer in JSON.", "user": "{{thing}}",
            "response": "json", "variables": {"thing": {}}}),
        )
        .unwrap();
        let r = p.render(&json!({"thing": "x"})).unwrap();
        assert_eq!(r.body["messages"][0]["content"], "Answer in JSON.");
    }

    #[test]
    fn bad_input_names_the_variable() {
        let p = translate();
        for (input, field) in [
            (json!({}), "text"),
            (json!({"text": 5}), "text"),
            (json!({"text": "much too long here"}), "text"),
            (json!({"text": "a", "language": "Klingon"}), "language"),
            (json!({"text": "a", "n": 9}), "n"),
            (json!({"text": "a", "n": 1.5}), "n"),
            (json!({"text": "a", "extra": 1}), "extra"),
            (json!({"text": "a", "stream": "yes"}), "stream"),
        ] {
            let e = p.render(&input).unwrap_err();
            assert_eq!(e.field, field, "{input}: {e}");
        }
        assert_eq!(p.render(&json!([1])).unwrap_err().field, "");
    }

    #[test]
    fn bad_definitions_name_the_field() {
        for (v, field) in [
            (json!({"model": "m", "user": "{{x}}"}), "prompt.variables"),
            (json!({"model": "m", "user": "{{x"}), "prompt.user"),
            (
                json!({"model": "m", "user": "a", "variables": {"x": {"type": "date"}}}),
                "prompt.variables.x.type",
            ),
            (
                json!({"model": "m", "user": "a", "variables": {"x": {"type": "integer", "default": "a"}}}),
                "prompt.variables.x.default",
            ),
            (
                json!({"model": "m", "user": "a", "params": {"tools": []}}),
                "prompt.params.tools",
            ),
            (
                json!({"model": "m", "user": "a", "params": {"temperature": "hot"}}),
                "prompt.params",
            ),
            (
                json!({"model": "m", "user": "a", "response": "xml"}),
                "prompt.response",
            ),
        ] {
            assert_eq!(prompt(v.clone()).unwrap_err().field, field, "{v}");
        }
    }

    #[test]
    fn answers_reshape_the_completion() {
        let out = br#"{"model":"m","choices":[{"message":{"content":"```json\n{\"a\":1}\n```"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3}}"#;
        let mut p = translate();
        p.json = true;
        let v: Value = serde_json::from_slice(&p.answer(out).unwrap()).unwrap();
        assert_eq!(v["output"], json!({"a": 1}));
        assert_eq!(v["usage"]["prompt_tokens"], 3);
        p.json = false;
        let v: Value = serde_json::from_slice(&p.answer(out).unwrap()).unwrap();
        assert!(v["output"].as_str().unwrap().contains("\"a\":1"));
    }
}
