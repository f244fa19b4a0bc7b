//! An Anthropic client's Messages request as a hub (OpenAI chat completions) request.

use serde_json::{json, Map, Value};

use super::convert::{invalid, type_name};
use crate::transcode::TranscodeError;

type Object = Map<String, Value>;

/// An Anthropic client's Messages request (`POST /v1/messages`) as a hub (OpenAI chat
/// completions) request.
///
/// - `system` (a string or text blocks, joined with blank lines) → a leading `system`
///   message; `cache_control` marks are dropped everywhere.
/// - User turns: `text` and `image` blocks → content parts (a lone text block → a string);
///   each `tool_result` → its own `tool` message, in order, with its text joined (OpenAI
///   tool messages carry text only, so images inside a tool result follow the tool messages
///   as a user message; `is_error` has no counterpart and is dropped); a base64 or text
///   `document` → a `file` part or a text part.
/// - Assistant turns: text blocks → `content`, `tool_use` → `tool_calls` with the input as
///   a JSON string. `thinking` and `redacted_thinking` blocks of earlier turns are dropped:
///   their signatures mean nothing to another upstream.
/// - `tools` → function tools (server tools such as web search are rejected),
///   `tool_choice` auto/any/tool/none → `auto`/`required`/named function/`none`,
///   `disable_parallel_tool_use` → `parallel_tool_calls: false`.
/// - `max_tokens` → `max_tokens`, `stop_sequences` → `stop`, `temperature`, `top_p` as
///   they are, `metadata.user_id` → `user`; `stream: true` also asks for usage
///   (`stream_options.include_usage`). `top_k` and `thinking` have no OpenAI counterpart and
///   are dropped; so are fields this function does not know.
///
/// Validation errors name the parameter (`messages[2].content[0].type`).
pub fn request_to_openai(body: &[u8]) -> Result<Value, TranscodeError> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| TranscodeError::invalid(format!("the request body is not valid JSON: {e}"), None))?;
    let Value::Object(request) = request else {
        return Err(TranscodeError::invalid("the request body must be a JSON object", None));
    };
    let mut hub = Object::new();
    let model = match request.get("model") {
        Some(Value::String(model)) if !model.trim().is_empty() => model.clone(),
        Some(_) => return Err(invalid("`model` must be a non-empty string", "model")),
        None => return Err(invalid("`model` is required", "model")),
    };
    hub.insert("model".into(), Value::String(model));
    let max_tokens = match request.get("max_tokens") {
        None | Some(Value::Null) => return Err(invalid("`max_tokens` is required", "max_tokens")),
        Some(value) => value
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid(format!("`max_tokens` must be a positive integer, not {value}"), "max_tokens"))?,
    };

    let mut messages = Vec::new();
    if let Some(system) = request.get("system").filter(|s| !s.is_null()) {
        let text = system_text(system)?;
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    let turns = match request.get("messages") {
        Some(Value::Array(turns)) if !turns.is_empty() => turns,
        Some(Value::Array(_)) => return Err(invalid("`messages` must not be empty", "messages")),
        Some(other) => {
            return Err(invalid(format!("`messages` must be an array, not {}", type_name(other)), "messages"))
        }
        None => return Err(invalid("`messages` is required", "messages")),
    };
    for (i, turn) in turns.iter().enumerate() {
        turn_to_openai(turn, i, &mut messages)?;
    }
    hub.insert("messages".into(), Value::Array(messages));
    hub.insert("max_tokens".into(), max_tokens.into());

    for key in ["temperature", "top_p"] {
        match request.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => {
                hub.insert(key.into(), Value::Number(n.clone()));
            }
            Some(other) => return Err(invalid(format!("`{key}` must be a number, not {}", type_name(other)), key)),
        }
    }
    match request.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(stops)) => {
            if stops.iter().any(|s| !s.is_string()) {
                return Err(invalid("`stop_sequences` must be an array of strings", "stop_sequences"));
            }
            if !stops.is_empty() {
                hub.insert("stop".into(), Value::Array(stops.clone()));
            }
        }
        Some(_) => return Err(invalid("`stop_sequences` must be an array of strings", "stop_sequences")),
    }
    if let Some(user) = request.get("metadata").and_then(|m| m.get("user_id")).and_then(Value::as_str) {
        hub.insert("user".into(), user.into());
    }
    if let Some(tools) = request.get("tools").filter(|t| !t.is_null()) {
        let tools = tools_to_openai(tools)?;
        if !tools.is_empty() {
            hub.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(choice) = request.get("tool_choice").filter(|c| !c.is_null()) {
        let (choice, parallel) = tool_choice_to_openai(choice)?;
        hub.insert("tool_choice".into(), choice);
        if let Some(parallel) = parallel {
            hub.insert("parallel_tool_calls".into(), parallel.into());
        }
    }
    match request.get("stream") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(stream)) => {
            hub.insert("stream".into(), (*stream).into());
            if *stream {
                hub.insert("stream_options".into(), json!({"include_usage": true}));
            }
        }
        Some(other) => return Err(invalid(format!("`stream` must be a boolean, not {}", type_name(other)), "stream")),
    }
    Ok(Value::Object(hub))
}

/// `system` as one text: a string, or text blocks joined with blank lines.
fn system_text(system: &Value) -> Result<String, TranscodeError> {
    match system {
        Value::String(text) => Ok(text.clone()),
        Value::Array(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.iter().enumerate() {
                let param = format!("system[{j}]");
                if block.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(invalid("`system` blocks must be text blocks", &param));
                }
                texts.push(text_of(block, &param)?);
            }
            Ok(texts.join("\n\n"))
        }
        other => Err(invalid(format!("`system` must be a string or text blocks, not {}", type_name(other)), "system")),
    }
}

/// A text block's `text`.
fn text_of<'a>(block: &'a Value, param: &str) -> Result<&'a str, TranscodeError> {
    block.get("text").and_then(Value::as_str).ok_or_else(|| invalid("a text block needs a string `text`", param))
}

/// One Anthropic turn as one or more OpenAI messages, appended to `out`.
fn turn_to_openai(turn: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), TranscodeError> {
    let param = format!("messages[{i}]");
    let Value::Object(turn) = turn else {
        return Err(invalid("each message must be an object", &param));
    };
    let role = match turn.get("role").and_then(Value::as_str) {
        Some(role @ ("user" | "assistant")) => role,
        _ => return Err(invalid("`role` must be `user` or `assistant`", &format!("{param}.role"))),
    };
    let blocks = match turn.get("content") {
        Some(Value::String(text)) => {
            out.push(json!({"role": role, "content": text}));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => return Err(invalid("`content` must be a string or an array of blocks", &format!("{param}.content"))),
    };
    if role == "user" {
        user_blocks_to_openai(blocks, &param, out)
    } else {
        assistant_blocks_to_openai(blocks, &param, out)
    }
}

/// The `type` of block `j` of message `param`.
fn block_type<'a>(block: &'a Value, param: &str) -> Result<&'a str, TranscodeError> {
    block.get("type").and_then(Value::as_str).ok_or_else(|| invalid("each content block needs a string `type`", param))
}

fn user_blocks_to_openai(blocks: &[Value], param: &str, out: &mut Vec<Value>) -> Result<(), TranscodeError> {
    let mut parts: Vec<Value> = Vec::new();
    // Images inside tool results: OpenAI's tool messages carry only text.
    let mut deferred: Vec<Value> = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("{param}.content[{j}]");
        let kind = block_type(block, &format!("{param}.type"))?;
        if kind != "tool_result" {
            parts.append(&mut deferred);
        }
        match kind {
            "text" => parts.push(json!({"type": "text", "text": text_of(block, &param)?})),
            "image" => parts.push(image_to_openai(block, &param)?),
            "document" => parts.push(document_to_openai(block, &param)?),
            "tool_result" => {
                flush_user(&mut parts, out);
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("a tool_result block needs a string `tool_use_id`", &param))?;
                let mut texts = Vec::new();
                match block.get("content") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(text)) => texts.push(text.as_str()),
                    Some(Value::Array(inner)) => {
                        for (k, item) in inner.iter().enumerate() {
                            let param = format!("{param}.content[{k}]");
                            match block_type(item, &format!("{param}.type"))? {
                                "text" => texts.push(text_of(item, &param)?),
                                "image" => deferred.push(image_to_openai(item, &param)?),
                                "document" => deferred.push(document_to_openai(item, &param)?),
                                other => {
                                    return Err(invalid(
                                        format!("unsupported block type `{other}` in a tool result"),
                                        &format!("{param}.type"),
                                    ))
                                }
                            }
                        }
                    }
                    Some(_) => {
                        return Err(invalid(
                            "a tool result's `content` must be a string or blocks",
                            &format!("{param}.content"),
                        ))
                    }
                }
                out.push(json!({"role": "tool", "tool_call_id": id, "content": texts.join("\n")}));
            }
            other => {
                return Err(invalid(
                    format!("unsupported content block type `{other}` in a user message"),
                    &format!("{param}.type"),
                ))
            }
        }
    }
    parts.append(&mut deferred);
    flush_user(&mut parts, out);
    Ok(())
}

/// The user parts gathered so far as one message: a lone text part as a string.
fn flush_user(parts: &mut Vec<Value>, out: &mut Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    let content = match parts.as_slice() {
        [only] if only.get("type").and_then(Value::as_str) == Some("text") => only["text"].clone(),
        _ => Value::Array(std::mem::take(parts)),
    };
    parts.clear();
    out.push(json!({"role": "user", "content": content}));
}

fn image_to_openai(block: &Value, param: &str) -> Result<Value, TranscodeError> {
    let source = block.get("source").ok_or_else(|| invalid("an image block needs a `source`", param))?;
    let text = |key: &str| source.get(key).and_then(Value::as_str);
    let url = match text("type") {
        Some("base64") => match (text("media_type"), text("data")) {
            (Some(media_type), Some(data)) => format!("data:{media_type};base64,{data}"),
            _ => return Err(invalid("a base64 image needs `media_type` and `data`", &format!("{param}.source"))),
        },
        Some("url") => match text("url") {
            Some(url) => url.to_owned(),
            None => return Err(invalid("a URL image needs a `url`", &format!("{param}.source"))),
        },
        _ => return Err(invalid("an image source must be of type `base64` or `url`", &format!("{param}.source.type"))),
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A document (PDF) block: base64 → an OpenAI `file` part, plain text → a text part.
fn document_to_openai(block: &Value, param: &str) -> Result<Value, TranscodeError> {
    let source = block.get("source");
    let text = |key: &str| source.and_then(|s| s.get(key)).and_then(Value::as_str);
    match (text("type"), text("media_type"), text("data")) {
        (Some("base64"), Some(media_type), Some(data)) => {
            let mut file = json!({"file_data": format!("data:{media_type};base64,{data}")});
            if let Some(title) = block.get("title").and_then(Value::as_str) {
                file["filename"] = title.into();
            }
            Ok(json!({"type": "file", "file": file}))
        }
        (Some("text"), _, Some(data)) => Ok(json!({"type": "text", "text": data})),
        _ => Err(invalid("only base64 and text document sources can be converted", &format!("{param}.source"))),
    }
}

fn assistant_blocks_to_openai(blocks: &[Value], param: &str, out: &mut Vec<Value>) -> Result<(), TranscodeError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("{param}.content[{j}]");
        match block_type(block, &format!("{param}.type"))? {
            "text" => text.push_str(text_of(block, &param)?),
            "tool_use" => {
                let field = |key: &str| {
                    block
                        .get(key)
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(format!("a tool_use block needs a string `{key}`"), &param))
                };
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": field("id")?,
                    "type": "function",
                    "function": {"name": field("name")?, "arguments": input.to_string()},
                }));
            }
            // Signed by Anthropic for Anthropic: meaningless to another upstream.
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(invalid(
                    format!("unsupported content block type `{other}` in an assistant message"),
                    &format!("{param}.type"),
                ))
            }
        }
    }
    let mut message = json!({"role": "assistant"});
    message["content"] = if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) };
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    out.push(message);
    Ok(())
}

fn tools_to_openai(tools: &Value) -> Result<Vec<Value>, TranscodeError> {
    let Value::Array(tools) = tools else {
        return Err(invalid("`tools` must be an array", "tools"));
    };
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let param = format!("tools[{i}]");
            match tool.get("type").and_then(Value::as_str) {
                None | Some("custom") => {}
                Some(other) => {
                    return Err(invalid(
                        format!("the server tool `{other}` cannot be used with this model"),
                        &format!("{param}.type"),
                    ))
                }
            }
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("a tool needs a string `name`", &format!("{param}.name")))?;
            let schema = tool
                .get("input_schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| invalid("a tool needs an `input_schema` object", &format!("{param}.input_schema")))?;
            let mut function = json!({"name": name, "parameters": schema});
            if let Some(description) = tool.get("description").and_then(Value::as_str) {
                function["description"] = description.into();
            }
            Ok(json!({"type": "function", "function": function}))
        })
        .collect()
}

/// Anthropic's `tool_choice` as OpenAI's, and `parallel_tool_calls` when it says.
fn tool_choice_to_openai(choice: &Value) -> Result<(Value, Option<bool>), TranscodeError> {
    let parallel = choice.get("disable_parallel_tool_use").and_then(Value::as_bool).filter(|d| *d).map(|_| false);
    let choice = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => match choice.get("name").and_then(Value::as_str) {
            Some(name) => json!({"type": "function", "function": {"name": name}}),
            None => return Err(invalid("`tool_choice` of type `tool` needs a `name`", "tool_choice.name")),
        },
        _ => return Err(invalid("`tool_choice.type` must be auto, any, tool or none", "tool_choice.type")),
    };
    Ok((choice, parallel))
}
