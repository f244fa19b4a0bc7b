//! Messages requests: an Anthropic client's to the hub, and the hub's to an Anthropic upstream.

use serde_json::{json, Map, Value};

use super::convert::{image_source, type_name};
use crate::transcode::TranscodeError;

type Object = Map<String, Value>;

fn invalid(message: impl Into<String>, param: &str) -> TranscodeError {
    TranscodeError::invalid(message, Some(param))
}

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
