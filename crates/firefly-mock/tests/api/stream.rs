use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{read_until_end, stream_events, Harness};

/// Checks what every chunk of a stream shares and returns the events before `[DONE]`.
fn check_chunks(events: &[Value], model: &str) -> Vec<Value> {
    assert_eq!(events.last().unwrap(), "[DONE]", "the stream ends with [DONE]");
    let chunks = &events[..events.len() - 1];
    assert!(!chunks.iter().any(|e| e == "[DONE]"), "[DONE] only once, at the end");
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    for chunk in chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], id, "one id for the whole stream");
        assert_eq!(chunk["created"], chunks[0]["created"]);
        assert_eq!(chunk["model"], model);
    }
    chunks.to_vec()
}

#[tokio::test]
async fn stream_transcript_with_usage() {
    let h = Harness::start().await;
    let response = h
        .chat()
        .header("x-mock-chunks", "4")
        .json(&Harness::stream_body("Stream me four words.", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let transcript = response.text().await.unwrap();
    let events = crate::sse_events(&transcript);
    let chunks = check_chunks(&events, "gpt-4o-mini");
    // role, 4 content, finish, usage.
    assert_eq!(chunks.len(), 7);

    let role = &chunks[0]["choices"][0];
    assert_eq!(role["index"], 0);
    assert_eq!(role["delta"]["role"], "assistant");
    assert_eq!(role["delta"]["content"], "");
    assert_eq!(role["finish_reason"], Value::Null);

    let text: String = chunks[1..5]
        .iter()
        .map(|c| {
            assert!(c["choices"][0]["delta"].get("role").is_none(), "role only in the first delta");
            assert_eq!(c["choices"][0]["finish_reason"], Value::Null);
            c["choices"][0]["delta"]["content"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "Firefly mock says hello");

    let finish = &chunks[5]["choices"][0];
    assert_eq!(finish["delta"], json!({}));
    assert_eq!(finish["finish_reason"], "stop");

    // With include_usage, every chunk but the last has `usage: null`; the last has no choices.
    for chunk in &chunks[..6] {
        assert_eq!(chunk["usage"], Value::Null);
        assert!(chunk.get("usage").is_some());
        assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
    }
    let usage_chunk = &chunks[6];
    assert_eq!(usage_chunk["choices"], json!([]));
    // "Stream me four words." is 21 characters → 5 prompt tokens.
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 5);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 4);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 9);

    in_snapshots!(
        insta::assert_json_snapshot!("stream_with_usage", events, {"[].id" => "[id]", "[].created" => "[created]"})
    );
    // The bytes as sent: field order, framing, one event per `data:` line.
    let id = format!("\"id\":\"{}\"", chunks[0]["id"].as_str().unwrap());
    let created = format!("\"created\":{}", chunks[0]["created"]);
    let transcript = transcript.replace(&id, "\"id\":\"[id]\"").replace(&created, "\"created\":\"[created]\"");
    in_snapshots!(insta::assert_snapshot!("stream_with_usage_raw", transcript));
}

#[tokio::test]
async fn stream_without_include_usage_has_no_usage_at_all() {
    let h = Harness::start().await;
    let response = h.chat().header("x-mock-chunks", "2").json(&Harness::stream_body("x", false)).send().await.unwrap();
    let events = stream_events(response).await;
    let chunks = check_chunks(&events, "gpt-4o-mini");
    assert_eq!(chunks.len(), 4, "role, 2 content, finish");
    for chunk in &chunks {
        assert!(chunk.get("usage").is_none(), "{chunk}");
        assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
    }
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn no_usage_header_drops_the_usage_chunk_even_when_asked_for() {
    let h = Harness::start().await;
    let response = h
        .chat()
        .header("x-mock-chunks", "2")
        .header("x-mock-no-usage", "1")
        .json(&Harness::stream_body("x", true))
        .send()
        .await
        .unwrap();
    let chunks = check_chunks(&stream_events(response).await, "gpt-4o-mini");
    assert_eq!(chunks.len(), 4);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
}

#[tokio::test]
async fn n_choices_interleave_token_by_token() {
    let h = Harness::start().await;
    let mut body = Harness::stream_body("12345678", true);
    body["n"] = json!(2);
    let response = h.chat().header("x-mock-chunks", "3").json(&body).send().await.unwrap();
    let chunks = check_chunks(&stream_events(response).await, "gpt-4o-mini");
    // 2 role + 3×2 content + 2 finish + usage.
    assert_eq!(chunks.len(), 11);
    let indexes: Vec<u64> = chunks[..10].iter().map(|c| c["choices"][0]["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
    for choice in 0..2 {
        let text: String = chunks[2..8]
            .iter()
            .filter(|c| c["choices"][0]["index"] == choice)
            .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(text, "Firefly mock says");
    }
    assert_eq!(chunks[8]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[9]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[10]["usage"]["prompt_tokens"], 2);
    assert_eq!(chunks[10]["usage"]["completion_tokens"], 6);
}

#[tokio::test]
async fn tool_call_stream_sends_id_and_name_first_then_argument_fragments() {
    let h = Harness::start().await;
    let mut body = Harness::stream_body("Weather?", true);
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]);
    let response =
        h.chat().header("x-mock-tool-call", "1").header("x-mock-chunks", "3").json(&body).send().await.unwrap();
    let events = stream_events(response).await;
    let chunks = check_chunks(&events, "gpt-4o-mini");
    assert_eq!(chunks.len(), 6, "role, 3 fragments, finish, usage");

    let head = &chunks[0]["choices"][0]["delta"];
    assert_eq!(head["role"], "assistant");
    assert_eq!(head["content"], Value::Null);
    let call = &head["tool_calls"][0];
    assert_eq!(call["index"], 0);
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "");

    let mut arguments = String::new();
    for chunk in &chunks[1..4] {
        let fragment = &chunk["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(fragment["index"], 0);
        assert!(fragment.get("id").is_none() && fragment["function"].get("name").is_none());
        arguments.push_str(fragment["function"]["arguments"].as_str().unwrap());
    }
    assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), json!({"text": "Firefly mock says"}));
    assert_eq!(chunks[4]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunks[5]["usage"]["completion_tokens"], 3);

    in_snapshots!(insta::assert_json_snapshot!("stream_tool_call", events, {
        "[].id" => "[id]",
        "[].created" => "[created]",
        "[].choices[].delta.tool_calls[].id" => "[call id]",
    }));
}

#[tokio::test]
async fn disconnect_after_k_sends_k_content_chunks_then_breaks_the_connection() {
    let h = Harness::start().await;
    for (k, delay) in [(3, "0"), (0, "0"), (2, "20")] {
        let response = h
            .chat()
            .header("x-mock-disconnect-after", k.to_string())
            .header("x-mock-chunk-delay-ms", delay)
            .json(&Harness::stream_body("x", true))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let (text, broke) = read_until_end(response).await;
        assert!(broke, "k={k}: the body ends in a connection error, not a clean end");
        assert!(!text.contains("[DONE]"), "k={k}: {text}");
        let events = crate::sse_events(&text);
        assert_eq!(events.len(), 1 + k, "k={k}: the role chunk and k content chunks: {text}");
        assert!(events.iter().all(|e| e["choices"][0]["finish_reason"].is_null()));
        let content: Vec<&str> =
            events[1..].iter().map(|e| e["choices"][0]["delta"]["content"].as_str().unwrap()).collect();
        assert_eq!(content.len(), k);
    }
    assert_eq!(h.mock.chat_requests(), 3);
}

#[tokio::test]
async fn disconnect_after_more_than_available_cuts_before_the_finish_chunk() {
    let h = Harness::start().await;
    let response = h
        .chat()
        .header("x-mock-chunks", "2")
        .header("x-mock-disconnect-after", "50")
        .json(&Harness::stream_body("x", true))
        .send()
        .await
        .unwrap();
    let (text, broke) = read_until_end(response).await;
    assert!(broke);
    let events = crate::sse_events(&text);
    assert_eq!(events.len(), 3, "role and both content chunks, no finish, usage or [DONE]");
}

#[tokio::test]
async fn chunk_delay_streams_incrementally() {
    let h = Harness::start().await;
    let delay = Duration::from_millis(150);
    let started = Instant::now();
    let mut response = h
        .chat()
        .header("x-mock-chunks", "3")
        .header("x-mock-chunk-delay-ms", delay.as_millis().to_string())
        .json(&Harness::stream_body("x", false))
        .send()
        .await
        .unwrap();
    let head_at = started.elapsed();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(bytes) = response.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&bytes).unwrap());
        arrivals.push((started.elapsed(), text.matches("\n\n").count()));
    }
    let total = started.elapsed();
    assert!(total >= delay * 3, "three delayed chunks take at least 3 × delay: {total:?}");
    assert!(head_at < delay * 2, "the head does not wait for the chunks: {head_at:?}");
    // The first content chunk (second event) arrives a full delay before the last one:
    // the body is written as it is produced, not buffered whole.
    let first_content = arrivals.iter().find(|(_, events)| *events >= 2).unwrap().0;
    let last_content = arrivals.iter().find(|(_, events)| *events >= 4).unwrap().0;
    assert!(last_content - first_content >= delay, "{arrivals:?}");
    assert_eq!(crate::sse_events(&text).len(), 6, "role, 3 content, finish, [DONE]");
}
