use super::*;

// Errors
// ---------------------------------------------------------------------------------------

#[test]
fn error_bodies_and_types() {
    assert_eq!(
        to_value(&error_body("invalid_request_error", "max_tokens: Field required")),
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}})
    );
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (503, "api_error"),
        (529, "overloaded_error"),
    ] {
        assert_eq!(error_type_for_status(status), kind, "{status}");
    }
}

#[test]
fn errors_pass_between_formats_with_their_message() {
    let openai = br#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
    assert_eq!(
        to_value(&openai_error_to_anthropic(400, openai)),
        json!({"type": "error", "error": {"type": "invalid_request_error",
               "message": "This model's maximum context length is 128000 tokens."}})
    );
    assert_eq!(to_value(&openai_error_to_anthropic(429, b"slow down"))["error"]["message"], "slow down");
    assert_eq!(to_value(&openai_error_to_anthropic(429, b"slow down"))["error"]["type"], "rate_limit_error");
    let empty = to_value(&openai_error_to_anthropic(502, b""));
    assert_eq!(empty["error"]["type"], "api_error");
    assert!(empty["error"]["message"].as_str().unwrap().contains("502"));
    let long = vec![b'x'; 5000];
    assert!(to_value(&openai_error_to_anthropic(500, &long))["error"]["message"].as_str().unwrap().len() < 600);

    let anthropic = br#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}"#;
    assert_eq!(
        to_value(&anthropic_error_to_openai(404, anthropic)),
        json!({"error": {"message": "model: claude-9", "type": "not_found_error", "param": null, "code": null}})
    );
    assert_eq!(to_value(&anthropic_error_to_openai(529, b"\xff\xfe"))["error"]["type"], "overloaded_error");
}

// ---------------------------------------------------------------------------------------
// Adapter
// ---------------------------------------------------------------------------------------

fn ctx<'a>(base_url: &'a str, api_version: Option<&'a str>, key: &'a str) -> RequestContext<'a> {
    RequestContext { base_url, api_version, key, model: Some("claude-sonnet-4-5"), stream: true }
}

#[test]
fn adapter_builds_anthropic_urls_and_headers() {
    let adapter = AnthropicAdapter;
    assert_eq!(adapter.name(), "anthropic");
    assert_eq!(adapter.wire_format(), WireFormat::Anthropic);
    for base in [
        "https://api.anthropic.com",
        "https://api.anthropic.com/",
        "https://api.anthropic.com/v1",
        "https://api.anthropic.com/v1/",
    ] {
        let request = adapter.build(Operation::ChatCompletions, &ctx(base, None, "sk-ant-test")).unwrap();
        assert_eq!(request.method, http::Method::POST);
        assert_eq!(request.url.as_str(), "https://api.anthropic.com/v1/messages", "{base}");
        assert_eq!(request.headers["x-api-key"], "sk-ant-test");
        assert!(request.headers["x-api-key"].is_sensitive());
        assert_eq!(request.headers["anthropic-version"], ANTHROPIC_VERSION);
        assert_eq!(request.headers["content-type"], "application/json");
        assert!(request.headers.get("authorization").is_none());
    }
    let count =
        adapter.build(Operation::CountTokens, &ctx("https://proxy.example/anthropic", Some("2024-01-01"), "")).unwrap();
    assert_eq!(count.url.as_str(), "https://proxy.example/anthropic/v1/messages/count_tokens");
    assert_eq!(count.headers["anthropic-version"], "2024-01-01");
    assert!(count.headers.get("x-api-key").is_none());
    let models = adapter.build(Operation::ListModels, &ctx("https://api.anthropic.com", Some(" "), "k")).unwrap();
    assert_eq!((models.method, models.url.as_str()), (http::Method::GET, "https://api.anthropic.com/v1/models"));
    assert!(models.headers.get("content-type").is_none());
    assert_eq!(models.headers["anthropic-version"], ANTHROPIC_VERSION);

    for op in
        [Operation::Embeddings, Operation::ImageGenerations, Operation::AudioSpeech, Operation::AudioTranscriptions]
    {
        assert_eq!(
            adapter.build(op, &ctx("https://api.anthropic.com", None, "k")).unwrap_err(),
            BuildError::Unsupported { provider: "anthropic", operation: op }
        );
    }
    assert_eq!(
        adapter.build(Operation::ChatCompletions, &ctx("https://a.b", None, "bad\nkey")).unwrap_err(),
        BuildError::InvalidKey
    );
    assert!(matches!(
        adapter.build(Operation::ChatCompletions, &ctx("ftp://a.b", None, "k")),
        Err(BuildError::InvalidBaseUrl { .. })
    ));
    assert!(crate::Registry::default().get("anthropic").is_some());
}

#[test]
fn adapter_classifies_anthropic_errors() {
    let body = |kind: &str, message: &str| error_body(kind, message);
    let mut retry = HeaderMap::new();
    retry.insert("retry-after", "7".parse().unwrap());
    let seven = UpstreamFailure::Retryable { retry_after: Some(std::time::Duration::from_secs(7)) };
    let none = HeaderMap::new();
    let cases = [
        (400, body("invalid_request_error", "max_tokens: Field required"), &none, UpstreamFailure::Fatal),
        (
            400,
            body(
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
            ),
            &none,
            UpstreamFailure::OutOfBalance,
        ),
        (402, body("billing_error", "payment required"), &none, UpstreamFailure::OutOfBalance),
        (401, body("authentication_error", "invalid x-api-key"), &none, UpstreamFailure::AuthFailed),
        (403, body("permission_error", "no access"), &none, UpstreamFailure::AuthFailed),
        (404, body("not_found_error", "model: claude-x"), &none, UpstreamFailure::Fatal),
        (413, body("request_too_large", "too large"), &none, UpstreamFailure::Fatal),
        (429, body("rate_limit_error", "slow down"), &retry, seven),
        (500, body("api_error", "internal"), &none, UpstreamFailure::Retryable { retry_after: None }),
        (529, body("overloaded_error", "Overloaded"), &retry, seven),
        (503, b"<html>".to_vec(), &none, UpstreamFailure::Retryable { retry_after: None }),
        (418, body("overloaded_error", "Overloaded"), &none, UpstreamFailure::Retryable { retry_after: None }),
        (400, b"not json".to_vec(), &none, UpstreamFailure::Fatal),
        (400, body("invalid_request_error", "This organization has been disabled."), &none, UpstreamFailure::AuthFailed),
    ];
    for (status, body, headers, expected) in cases {
        assert_eq!(
            AnthropicAdapter.classify(status, headers, &body),
            expected,
            "{status} {}",
            String::from_utf8_lossy(&body)
        );
    }
}
