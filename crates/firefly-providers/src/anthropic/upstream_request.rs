//! A hub (OpenAI chat completions) request as the body of an Anthropic upstream's request.

use serde_json::{json, Map, Value};

use super::convert::{image_source, invalid};
use crate::transcode::TranscodeError;

type Object = Map<String, Value>;

/// A hub (OpenAI chat completions) request as the body of an Anthropic Messages request for
/// `upstream_model`.
///
/// - `system` and `developer` messages, wherever they are, → `system` text blocks (their
///   position in the conversation is lost).
/// - `tool` messages → user turns of `tool_result` blocks; assistant `tool_calls` →
///   `tool_use` blocks whose `input` is the parsed `arguments` (empty arguments → `{}`,
///   anything but a JSON object → an error). Consecutive turns of one role are merged, as
///   Anthropic requires turns to alternate; empty text is left out, as Anthropic rejects
///   empty text blocks. `reasoning_content` of earlier turns is dropped (it has no
///   signature).
/// - `image_url` parts → image blocks (`data:` URLs → base64 sources, `http(s)` URLs → URL
///   sources); `file` parts with `data:` content → document blocks; other parts (audio) are
///   rejected.
/// - `max_completion_tokens`, else `max_tokens`, else `default_max_tokens` → `max_tokens`
///   (Anthropic requires it); `stop` → `stop_sequences`; `temperature` clamped to
///   Anthropic's 0–1; `top_p` (and a non-standard `top_k`) as they are; `user` →
///   `metadata.user_id`; `stream` as it is (`stream_options` dropped: Anthropic always
///   reports usage).
/// - `tools` (function tools only) → `tools`; `tool_choice` auto/none/required/named →
///   auto/none/any/tool; `parallel_tool_calls: false` → `disable_parallel_tool_use`.
/// - `response_format` `json_object`/`json_schema`: Anthropic has no JSON mode, so an
///   instruction to answer with JSON only (quoting the schema) is added to `system`.
/// - `n` other than 1 is rejected (Anthropic has no `n`); `logprobs`, `seed`, penalties,
///   `logit_bias`, `reasoning_effort` and unknown fields are dropped.
pub fn request_from_openai(
    hub: &Value,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Vec<u8>, TranscodeError> {
    let Value::Object(hub) = hub else {
        return Err(TranscodeError::invalid("the request body must be a JSON object", None));
    };
    match hub.get("n") {
        None | Some(Value::Null) => {}
        Some(n) if n.as_u64() == Some(1) => {}
        Some(_) => return Err(invalid("this model generates one choice per request: `n` must be 1", "n")),
    }
    let mut out = Object::new();
    out.insert("model".into(), upstream_model.into());
    let max_tokens = match ["max_completion_tokens", "max_tokens"]
        .into_iter()
        .find_map(|k| hub.get(k).filter(|v| !v.is_null()).map(|v| (k, v)))
    {
        Some((key, value)) => value
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid(format!("`{key}` must be a positive integer"), key))?,
        None => default_max_tokens.max(1),
    };
    out.insert("max_tokens".into(), max_tokens.into());

    let Some(Value::Array(messages)) = hub.get("messages") else {
        return Err(invalid("`messages` must be an array", "messages"));
    };
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let role = message.get("role").and_then(Value::as_str).unwrap_or_default();
        let (role, blocks) = match role {
            "system" | "developer" => {
                for text in texts_of(message.get("content"), &format!("{param}.content"))? {
                    system.push(json!({"type": "text", "text": text}));
                }
                continue;
            }
            "user" => ("user", user_content_to_blocks(message.get("content"), &param)?),
            "assistant" => ("assistant", assistant_to_blocks(message, &param)?),
            "tool" => {
                let id = message.get("tool_call_id").and_then(Value::as_str).ok_or_else(|| {
                    invalid("a tool message needs a `tool_call_id`", &format!("{param}.tool_call_id"))
                })?;
                let text = texts_of(message.get("content"), &format!("{param}.content"))?.join("\n");
                let mut result = json!({"type": "tool_result", "tool_use_id": id});
                if !text.is_empty() {
                    result["content"] = text.into();
                }
                ("user", vec![result])
            }
            _ => {
                return Err(invalid(
                    "`role` must be system, developer, user, assistant or tool",
                    &format!("{param}.role"),
                ))
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, previous)) if *last == role => previous.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    if turns.is_empty() {
        return Err(invalid("`messages` must hold at least one user or assistant message with content", "messages"));
    }

    if let Some(instruction) = json_instruction(hub.get("response_format"))? {
        system.push(json!({"type": "text", "text": instruction}));
    }
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let turns = turns.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect();
    out.insert("messages".into(), Value::Array(turns));

    match hub.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(stop)) => {
            out.insert("stop_sequences".into(), json!([stop]));
        }
        Some(Value::Array(stops)) if stops.iter().all(Value::is_string) => {
            if !stops.is_empty() {
                out.insert("stop_sequences".into(), Value::Array(stops.clone()));
            }
        }
        Some(_) => return Err(invalid("`stop` must be a string or an array of strings", "stop")),
    }
    if let Some(temperature) = hub.get("temperature").filter(|t| !t.is_null()) {
        let t = temperature.as_f64().ok_or_else(|| invalid("`temperature` must be a number", "temperature"))?;
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    for key in ["top_p", "top_k"] {
        if let Some(value) = hub.get(key).filter(|v| !v.is_null()) {
            if !value.is_number() {
                return Err(invalid(format!("`{key}` must be a number"), key));
            }
            out.insert(key.into(), value.clone());
        }
    }
    if let Some(user) = hub.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(tools) = hub.get("tools").filter(|t| !t.is_null()) {
        let tools = tools_from_openai(tools)?;
        if !tools.is_empty() {
            out.insert("tools".into(), Value::Array(tools));
        }
    }
    let mut choice = match hub.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(choice) => Some(tool_choice_from_openai(choice)?),
    };
    if hub.get("parallel_tool_calls") == Some(&Value::Bool(false)) && out.contains_key("tools") {
        let choice = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = true.into();
        }
    }
    if let Some(choice) = choice {
        out.insert("tool_choice".into(), choice);
    }
    match hub.get("stream") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(stream)) => {
            out.insert("stream".into(), (*stream).into());
        }
        Some(_) => return Err(invalid("`stream` must be a boolean", "stream")),
    }
    serde_json::to_vec(&Value::Object(out)).map_err(|e| TranscodeError::invalid(e.to_string(), None))
}

/// The texts of a system, developer or tool message's content: a string or text parts.
fn texts_of<'a>(content: Option<&'a Value>, param: &str) -> Result<Vec<&'a str>, TranscodeError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(if text.is_empty() { Vec::new() } else { vec![text.as_str()] }),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .filter_map(|(j, part)| match part.get("type").and_then(Value::as_str) {
                Some("text") => match part.get("text").and_then(Value::as_str) {
                    Some("") => None,
                    Some(text) => Some(Ok(text)),
                    None => Some(Err(invalid("a text part needs a string `text`", &format!("{param}[{j}]")))),
                },
                _ => Some(Err(invalid("only text parts are allowed here", &format!("{param}[{j}].type")))),
            })
            .collect(),
        Some(_) => Err(invalid("`content` must be a string or an array of parts", param)),
    }
}

fn user_content_to_blocks(content: Option<&Value>, param: &str) -> Result<Vec<Value>, TranscodeError> {
    let param = format!("{param}.content");
    let parts = match content {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) if text.is_empty() => return Ok(Vec::new()),
        Some(Value::String(text)) => return Ok(vec![json!({"type": "text", "text": text})]),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err(invalid("`content` must be a string or an array of parts", &param)),
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let param = format!("{param}[{j}]");
        let field = |key: &str| part.get(key);
        match field("type").and_then(Value::as_str) {
            Some("text") => match field("text").and_then(Value::as_str) {
                Some("") => {}
                Some(text) => blocks.push(json!({"type": "text", "text": text})),
                None => return Err(invalid("a text part needs a string `text`", &param)),
            },
            Some("image_url") => {
                let image = field("image_url");
                let url = image.and_then(|i| i.get("url").or(Some(i))).and_then(Value::as_str).ok_or_else(|| {
                    invalid("an image_url part needs `image_url.url`", &format!("{param}.image_url.url"))
                })?;
                let source = image_source(url).ok_or_else(|| {
                    invalid(
                        "an image URL must be an http(s) URL or a base64 data: URL",
                        &format!("{param}.image_url.url"),
                    )
                })?;
                blocks.push(json!({"type": "image", "source": source}));
            }
            Some("file") => {
                let file = field("file");
                let data = file.and_then(|f| f.get("file_data")).and_then(Value::as_str).and_then(image_source);
                let Some(source) = data.filter(|s| s["type"] == "base64") else {
                    return Err(invalid(
                        "only files given inline as base64 data: URLs can be sent to this model",
                        &format!("{param}.file"),
                    ));
                };
                blocks.push(json!({"type": "document", "source": source}));
            }
            Some(other) => {
                return Err(invalid(
                    format!("content parts of type `{other}` are not supported"),
                    &format!("{param}.type"),
                ))
            }
            None => return Err(invalid("each content part needs a string `type`", &format!("{param}.type"))),
        }
    }
    Ok(blocks)
}

fn assistant_to_blocks(message: &Value, param: &str) -> Result<Vec<Value>, TranscodeError> {
    let mut blocks = Vec::new();
    match message.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            if !text.is_empty() {
                blocks.push(json!({"type": "text", "text": text}));
            }
        }
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let text = match part.get("type").and_then(Value::as_str) {
                    Some("text") => part.get("text"),
                    Some("refusal") => part.get("refusal"),
                    _ => None,
                };
                let text = text.and_then(Value::as_str).ok_or_else(|| {
                    invalid("assistant content parts must be text or refusal parts", &format!("{param}.content[{j}]"))
                })?;
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
            }
        }
        Some(_) => return Err(invalid("`content` must be a string or an array of parts", &format!("{param}.content"))),
    }
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => return Ok(blocks),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(invalid("`tool_calls` must be an array", &format!("{param}.tool_calls"))),
    };
    for (k, call) in calls.iter().enumerate() {
        let param = format!("{param}.tool_calls[{k}]");
        let function = call.get("function");
        let id = call.get("id").and_then(Value::as_str);
        let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
        let (Some(id), Some(name)) = (id, name) else {
            return Err(invalid("a tool call needs an `id` and a `function.name`", &param));
        };
        let arguments = function.and_then(|f| f.get("arguments"));
        let input = match arguments {
            None | Some(Value::Null) => json!({}),
            Some(Value::String(text)) if text.trim().is_empty() => json!({}),
            Some(Value::String(text)) => serde_json::from_str::<Value>(text).map_err(|e| {
                invalid(
                    format!("the tool call's arguments are not valid JSON: {e}"),
                    &format!("{param}.function.arguments"),
                )
            })?,
            Some(other) => other.clone(),
        };
        if !input.is_object() {
            return Err(invalid(
                "the tool call's arguments must be a JSON object",
                &format!("{param}.function.arguments"),
            ));
        }
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(blocks)
}

fn tools_from_openai(tools: &Value) -> Result<Vec<Value>, TranscodeError> {
    let Value::Array(tools) = tools else {
        return Err(invalid("`tools` must be an array", "tools"));
    };
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let param = format!("tools[{i}]");
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                return Err(invalid("only function tools can be used with this model", &format!("{param}.type")));
            }
            let function = tool.get("function");
            let name = function
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("a function tool needs a `function.name`", &format!("{param}.function.name")))?;
            let schema = function
                .and_then(|f| f.get("parameters"))
                .filter(|p| p.is_object())
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            let mut tool = json!({"name": name, "input_schema": schema});
            if let Some(description) = function.and_then(|f| f.get("description")).and_then(Value::as_str) {
                tool["description"] = description.into();
            }
            Ok(tool)
        })
        .collect()
}

fn tool_choice_from_openai(choice: &Value) -> Result<Value, TranscodeError> {
    Ok(match choice {
        Value::String(mode) => match mode.as_str() {
            "auto" => json!({"type": "auto"}),
            "none" => json!({"type": "none"}),
            "required" => json!({"type": "any"}),
            _ => return Err(invalid("`tool_choice` must be auto, none, required or a function", "tool_choice")),
        },
        Value::Object(_) => match choice.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
            Some(name) => json!({"type": "tool", "name": name}),
            None => return Err(invalid("a named `tool_choice` needs `function.name`", "tool_choice.function.name")),
        },
        _ => return Err(invalid("`tool_choice` must be a string or an object", "tool_choice")),
    })
}

/// The system instruction that stands in for OpenAI's `response_format`.
fn json_instruction(format: Option<&Value>) -> Result<Option<String>, TranscodeError> {
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some("Respond with a single valid JSON object and nothing else.".to_owned())),
        Some("json_schema") => {
            let schema = format.get("json_schema").and_then(|s| s.get("schema")).cloned().unwrap_or(Value::Null);
            Ok(Some(format!(
                "Respond with a single valid JSON value and nothing else. It must conform to this JSON schema: {schema}"
            )))
        }
        _ => Err(invalid("`response_format.type` must be text, json_object or json_schema", "response_format.type")),
    }
}
