//! A hub (OpenAI chat-completions) request as a Gemini `generateContent` body.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use super::schema::clean_schema;
use super::wire::{
    Blob, Content, FileData, FunctionCall, FunctionCallingConfig, FunctionDeclaration, FunctionResponse,
    GenerateContentRequest, GenerationConfig, Part, Tool, ToolConfig,
};
use crate::transcode::TranscodeError;

/// The signature Google documents for function calls replayed without the one the model
/// sent: Gemini 3 models refuse a replayed `functionCall` part without a signature, and the
/// hub format has nowhere to keep the real one.
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Converts a hub chat request to a Gemini request body (the model goes in the URL).
///
/// See the [module docs](super) for what maps to what and what is lost.
pub fn request_from_openai(hub: &Value) -> Result<Vec<u8>, TranscodeError> {
    let hub = hub.as_object().ok_or_else(|| TranscodeError::invalid("the request body must be a JSON object", None))?;
    if let Some(legacy) = ["functions", "function_call"].into_iter().find(|k| hub.get(*k).is_some_and(|v| !v.is_null()))
    {
        return Err(TranscodeError::invalid(
            format!("the deprecated `{legacy}` is not supported for this model; use `tools` and `tool_choice`"),
            Some(legacy),
        ));
    }
    let messages = match hub.get("messages") {
        None | Some(Value::Null) => return Err(TranscodeError::invalid("`messages` is required", Some("messages"))),
        Some(Value::Array(messages)) if messages.is_empty() => {
            return Err(TranscodeError::invalid("`messages` must not be empty", Some("messages")))
        }
        Some(Value::Array(messages)) => messages,
        Some(_) => return Err(TranscodeError::invalid("`messages` must be an array", Some("messages"))),
    };
    let mut body = GenerateContentRequest::default();
    convert_messages(messages, &mut body)?;
    if let Some(tools) = hub.get("tools").filter(|t| !t.is_null()) {
        body.tools = convert_tools(tools)?;
    }
    if let Some(choice) = hub.get("tool_choice").filter(|c| !c.is_null()) {
        body.tool_config = Some(convert_tool_choice(choice)?);
    }
    body.generation_config = generation_config(hub)?;
    serde_json::to_vec(&body).map_err(|e| TranscodeError::invalid(format!("the request cannot be encoded: {e}"), None))
}

fn convert_messages(messages: &[Value], body: &mut GenerateContentRequest) -> Result<(), TranscodeError> {
    // Tool call id → function name, from the assistant turns seen so far; a later call with
    // the same id replaces an earlier one, so ids reused across turns resolve to the latest.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    let mut system = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let message = message
            .as_object()
            .ok_or_else(|| TranscodeError::invalid(format!("`{param}` must be an object"), Some(&param)))?;
        let role_param = format!("{param}.role");
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| TranscodeError::invalid(format!("`{role_param}` must be a string"), Some(&role_param)))?;
        let content = message.get("content").filter(|c| !c.is_null());
        let (role, parts) = match role {
            "system" | "developer" => {
                system.extend(text_parts(content, &param)?);
                continue;
            }
            "user" => ("user", user_parts(content, &param)?),
            "assistant" => ("model", assistant_parts(message, content, &param, &mut call_names)?),
            "tool" => ("user", vec![tool_part(message, content, &param, &call_names)?]),
            "function" => {
                return Err(TranscodeError::invalid(
                    format!("`{role_param}`: the deprecated `function` role is not supported; use `tool`"),
                    Some(&role_param),
                ))
            }
            other => {
                return Err(TranscodeError::invalid(
                    format!("`{role_param}`: unknown role {other:?}"),
                    Some(&role_param),
                ))
            }
        };
        if parts.is_empty() {
            continue;
        }
        match body.contents.last_mut() {
            Some(last) if last.role.as_deref() == Some(role) => last.parts.extend(parts),
            _ => body.contents.push(Content { role: Some(role.to_owned()), parts }),
        }
    }
    if !system.is_empty() {
        body.system_instruction = Some(Content { role: None, parts: system });
    }
    if body.contents.is_empty() {
        return Err(TranscodeError::invalid(
            "`messages` must hold at least one user, assistant or tool message with content",
            Some("messages"),
        ));
    }
    Ok(())
}

/// Text-only content (system, developer, tool): a string or an array of `text` parts.
fn text_of(content: Option<&Value>, param: &str) -> Result<Vec<String>, TranscodeError> {
    let content_param = format!("{param}.content");
    match content {
        None => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![text.clone()]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| {
                let part_param = format!("{content_param}[{j}]");
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => part
                        .get("text")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| invalid_type(&format!("{part_param}.text"), "a string")),
                    _ => Err(TranscodeError::invalid(
                        format!("`{part_param}` must be a text part here"),
                        Some(&format!("{part_param}.type")),
                    )),
                }
            })
            .collect(),
        Some(_) => Err(invalid_type(&content_param, "a string or an array of content parts")),
    }
}

fn text_parts(content: Option<&Value>, param: &str) -> Result<Vec<Part>, TranscodeError> {
    Ok(text_of(content, param)?.into_iter().filter(|t| !t.is_empty()).map(Part::text).collect())
}

fn user_parts(content: Option<&Value>, param: &str) -> Result<Vec<Part>, TranscodeError> {
    let content_param = format!("{param}.content");
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(Value::String(text)) => return Ok(if text.is_empty() { Vec::new() } else { vec![Part::text(text)] }),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err(invalid_type(&content_param, "a string or an array of content parts")),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let part_param = format!("{content_param}[{j}]");
        let kind = part.get("type").and_then(Value::as_str);
        let field = |name: &str| part.get(name).filter(|v| !v.is_null());
        match kind {
            Some("text") => {
                let text = field("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid_type(&format!("{part_param}.text"), "a string"))?;
                if !text.is_empty() {
                    out.push(Part::text(text));
                }
            }
            Some("image_url") => {
                let image_param = format!("{part_param}.image_url");
                let url = match field("image_url") {
                    Some(Value::String(url)) => url.as_str(),
                    Some(image) => image
                        .get("url")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid_type(&format!("{image_param}.url"), "a string"))?,
                    None => {
                        return Err(TranscodeError::invalid(format!("`{image_param}` is required"), Some(&image_param)))
                    }
                };
                out.push(media_part(url, &image_param)?);
            }
            Some("input_audio") => {
                let audio_param = format!("{part_param}.input_audio");
                let audio = field("input_audio");
                let data = audio
                    .and_then(|a| a.get("data"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid_type(&format!("{audio_param}.data"), "a base64 string"))?;
                let mime_type = match audio.and_then(|a| a.get("format")).and_then(Value::as_str) {
                    Some("wav") => "audio/wav",
                    Some("mp3") => "audio/mp3",
                    _ => {
                        let format_param = format!("{audio_param}.format");
                        return Err(TranscodeError::invalid(
                            format!("`{format_param}` must be \"wav\" or \"mp3\""),
                            Some(&format_param),
                        ));
                    }
                };
                out.push(Part {
                    inline_data: Some(Blob { mime_type: mime_type.to_owned(), data: data.to_owned() }),
                    ..Part::default()
                });
            }
            Some("file") => {
                let file_param = format!("{part_param}.file");
                let file = field("file");
                match file.and_then(|f| f.get("file_data")).and_then(Value::as_str) {
                    Some(data) => out.push(media_part(data, &format!("{file_param}.file_data"))?),
                    None => {
                        return Err(TranscodeError::invalid(
                            format!("`{file_param}`: only inline `file_data` (a data: URL) can be sent to this model; uploaded `file_id`s cannot"),
                            Some(&file_param),
                        ))
                    }
                }
            }
            Some(other) => {
                let type_param = format!("{part_param}.type");
                return Err(TranscodeError::invalid(
                    format!("`{type_param}`: content part type {other:?} is not supported for this model"),
                    Some(&type_param),
                ));
            }
            None => return Err(invalid_type(&format!("{part_param}.type"), "a string")),
        }
    }
    Ok(out)
}

/// A `data:` URL as inline data; an http(s) URL as a file reference (see the module docs
/// for which URLs Gemini fetches).
fn media_part(url: &str, param: &str) -> Result<Part, TranscodeError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| TranscodeError::invalid(format!("`{param}`: a data: URL needs a comma"), Some(param)))?;
        let mime_type = meta.strip_suffix(";base64").ok_or_else(|| {
            TranscodeError::invalid(format!("`{param}`: only base64 data: URLs are supported"), Some(param))
        })?;
        // Media-type parameters (`;charset=…`) are not part of Gemini's MIME type.
        let mime_type = mime_type.split(';').next().unwrap_or_default().trim();
        if mime_type.is_empty() {
            return Err(TranscodeError::invalid(format!("`{param}`: the data: URL names no media type"), Some(param)));
        }
        return Ok(Part {
            inline_data: Some(Blob { mime_type: mime_type.to_owned(), data: data.to_owned() }),
            ..Part::default()
        });
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(Part {
            file_data: Some(FileData { mime_type: guess_mime_type(url).to_owned(), file_uri: url.to_owned() }),
            ..Part::default()
        });
    }
    Err(TranscodeError::invalid(format!("`{param}` must be an http(s) URL or a base64 data: URL"), Some(param)))
}

/// The media type of a URL's file name extension; JPEG when there is none to go by.
fn guess_mime_type(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "ogg" => "audio/ogg",
        "flac" => "audio/flac",
        "mp4" => "video/mp4",
        "mov" => "video/mov",
        "webm" => "video/webm",
        "txt" => "text/plain",
        _ => "image/jpeg",
    }
}

fn assistant_parts<'a>(
    message: &'a Map<String, Value>,
    content: Option<&Value>,
    param: &str,
    call_names: &mut HashMap<&'a str, &'a str>,
) -> Result<Vec<Part>, TranscodeError> {
    // An assistant's content is text or refusal parts; both are what the model said.
    let mut parts = match content {
        Some(Value::Array(items)) => {
            let mut parts = Vec::with_capacity(items.len());
            for (j, item) in items.iter().enumerate() {
                let part_param = format!("{param}.content[{j}]");
                let text = match item.get("type").and_then(Value::as_str) {
                    Some("text") => item.get("text"),
                    Some("refusal") => item.get("refusal"),
                    _ => None,
                }
                .and_then(Value::as_str)
                .ok_or_else(|| invalid_type(&part_param, "a text or refusal part"))?;
                if !text.is_empty() {
                    parts.push(Part::text(text));
                }
            }
            parts
        }
        other => text_parts(other, param)?,
    };
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => return Ok(parts),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(invalid_type(&format!("{param}.tool_calls"), "an array")),
    };
    for (k, call) in calls.iter().enumerate() {
        let call_param = format!("{param}.tool_calls[{k}]");
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_type(&format!("{call_param}.id"), "a string"))?;
        let function = call.get("function");
        let name = function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid_type(&format!("{call_param}.function.name"), "a non-empty string"))?;
        let args_param = format!("{call_param}.function.arguments");
        let args = match function.and_then(|f| f.get("arguments")) {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(Value::String(text)) if text.trim().is_empty() => Value::Object(Map::new()),
            Some(Value::String(text)) => serde_json::from_str::<Value>(text).map_err(|e| {
                TranscodeError::invalid(format!("`{args_param}` is not valid JSON: {e}"), Some(&args_param))
            })?,
            Some(_) => return Err(invalid_type(&args_param, "a string of JSON")),
        };
        let Value::Object(args) = args else {
            return Err(TranscodeError::invalid(format!("`{args_param}` must be a JSON object"), Some(&args_param)));
        };
        call_names.insert(id, name);
        // Google asks for the signature on the first call of a step only.
        let thought_signature = (k == 0).then(|| SKIP_SIGNATURE.to_owned());
        parts.push(Part {
            function_call: Some(FunctionCall { id: None, name: name.to_owned(), args: Some(args) }),
            thought_signature,
            ..Part::default()
        });
    }
    Ok(parts)
}

fn tool_part(
    message: &Map<String, Value>,
    content: Option<&Value>,
    param: &str,
    call_names: &HashMap<&str, &str>,
) -> Result<Part, TranscodeError> {
    let id_param = format!("{param}.tool_call_id");
    let id = message.get("tool_call_id").and_then(Value::as_str).ok_or_else(|| invalid_type(&id_param, "a string"))?;
    let name = call_names.get(id).ok_or_else(|| {
        TranscodeError::invalid(
            format!("`{id_param}`: no earlier assistant message has a tool call with id {id:?}"),
            Some(&id_param),
        )
    })?;
    let text = text_of(content, param)?.concat();
    // Gemini wants an object: a JSON object result is sent as it is, anything else wrapped.
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(object)) => Value::Object(object),
        Ok(other) => serde_json::json!({ "result": other }),
        Err(_) => serde_json::json!({ "result": text }),
    };
    Ok(Part { function_response: Some(FunctionResponse { name: (*name).to_owned(), response }), ..Part::default() })
}

fn convert_tools(tools: &Value) -> Result<Vec<Tool>, TranscodeError> {
    let tools = tools.as_array().ok_or_else(|| invalid_type("tools", "an array"))?;
    let mut declarations = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let param = format!("tools[{i}]");
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(other) => {
                let type_param = format!("{param}.type");
                return Err(TranscodeError::invalid(
                    format!("`{type_param}`: tool type {other:?} is not supported for this model"),
                    Some(&type_param),
                ));
            }
            None => return Err(invalid_type(&format!("{param}.type"), "a string")),
        }
        let function = tool.get("function").ok_or_else(|| invalid_type(&format!("{param}.function"), "an object"))?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid_type(&format!("{param}.function.name"), "a non-empty string"))?;
        let description = match function.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) => Some(d.clone()),
            Some(_) => return Err(invalid_type(&format!("{param}.function.description"), "a string")),
        };
        let parameters_param = format!("{param}.function.parameters");
        let parameters = match function.get("parameters") {
            None | Some(Value::Null) => None,
            Some(schema @ Value::Object(_)) => {
                let schema = clean_schema(schema, &parameters_param)?;
                // Gemini refuses an OBJECT without properties: a function without
                // parameters is declared without a schema.
                let no_properties = schema.get("properties").and_then(Value::as_object).is_none_or(Map::is_empty);
                (!(schema.get("type").and_then(Value::as_str) == Some("object") && no_properties)).then_some(schema)
            }
            Some(_) => return Err(invalid_type(&parameters_param, "a JSON schema object")),
        };
        declarations.push(FunctionDeclaration { name: name.to_owned(), description, parameters });
    }
    Ok(if declarations.is_empty() { Vec::new() } else { vec![Tool { function_declarations: declarations }] })
}

fn convert_tool_choice(choice: &Value) -> Result<ToolConfig, TranscodeError> {
    let (mode, allowed_function_names) = match choice {
        Value::String(mode) => match mode.as_str() {
            "none" => ("NONE", Vec::new()),
            "auto" => ("AUTO", Vec::new()),
            "required" => ("ANY", Vec::new()),
            other => {
                return Err(TranscodeError::invalid(
                    format!("`tool_choice`: unknown value {other:?}; expected none, auto or required"),
                    Some("tool_choice"),
                ))
            }
        },
        Value::Object(_) => {
            let name = choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| invalid_type("tool_choice.function.name", "a non-empty string"))?;
            ("ANY", vec![name.to_owned()])
        }
        _ => return Err(invalid_type("tool_choice", "a string or an object")),
    };
    Ok(ToolConfig { function_calling_config: FunctionCallingConfig { mode, allowed_function_names } })
}

fn generation_config(hub: &Map<String, Value>) -> Result<GenerationConfig, TranscodeError> {
    let number = |name: &str| -> Result<Option<Number>, TranscodeError> {
        match hub.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(Some(n.clone())),
            Some(_) => Err(invalid_type(name, "a number")),
        }
    };
    let count = |name: &str| -> Result<Option<Number>, TranscodeError> {
        match hub.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.clone())),
            Some(_) => Err(invalid_type(name, "a non-negative integer")),
        }
    };
    let nonzero = |n: Option<Number>| n.filter(|n| n.as_f64() != Some(0.0));
    let stop_sequences = match hub.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(stop)) => vec![stop.clone()],
        Some(Value::Array(stops)) => stops
            .iter()
            .map(|s| {
                s.as_str().map(str::to_owned).ok_or_else(|| invalid_type("stop", "a string or an array of strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid_type("stop", "a string or an array of strings")),
    };
    let (response_mime_type, response_schema) = response_format(hub.get("response_format"))?;
    Ok(GenerationConfig {
        max_output_tokens: match count("max_completion_tokens")? {
            Some(n) => Some(n),
            None => count("max_tokens")?,
        },
        temperature: number("temperature")?,
        top_p: number("top_p")?,
        top_k: count("top_k")?,
        stop_sequences,
        candidate_count: count("n")?,
        presence_penalty: nonzero(number("presence_penalty")?),
        frequency_penalty: nonzero(number("frequency_penalty")?),
        seed: match hub.get("seed") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.clone()),
            Some(_) => return Err(invalid_type("seed", "an integer")),
        },
        response_mime_type,
        response_schema,
    })
}

fn response_format(format: Option<&Value>) -> Result<(Option<&'static str>, Option<Value>), TranscodeError> {
    let Some(format) = format.filter(|f| !f.is_null()) else { return Ok((None, None)) };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok((None, None)),
        Some("json_object") => Ok((Some("application/json"), None)),
        Some("json_schema") => {
            let schema = match format.get("json_schema").and_then(|s| s.get("schema")) {
                None | Some(Value::Null) => None,
                Some(schema @ Value::Object(_)) => Some(clean_schema(schema, "response_format.json_schema.schema")?),
                Some(_) => return Err(invalid_type("response_format.json_schema.schema", "a JSON schema object")),
            };
            Ok((Some("application/json"), schema))
        }
        Some(other) => Err(TranscodeError::invalid(
            format!("`response_format.type`: unknown value {other:?}; expected text, json_object or json_schema"),
            Some("response_format.type"),
        )),
        None => Err(invalid_type("response_format.type", "a string")),
    }
}

fn invalid_type(param: &str, expected: &str) -> TranscodeError {
    TranscodeError::invalid(format!("`{param}` must be {expected}"), Some(param))
}
