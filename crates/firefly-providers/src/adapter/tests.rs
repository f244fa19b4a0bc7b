use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method};

use super::failure::retry_after_at;
use super::*;

fn ctx<'a>(base_url: &'a str, api_version: Option<&'a str>, model: Option<&'a str>) -> RequestContext<'a> {
    RequestContext { base_url, api_version, key: "sk-test", model, stream: false }
}

fn header<'a>(request: &'a UpstreamRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).map(|v| v.to_str().unwrap())
}

#[test]
fn openai_urls_and_bearer_key() {
    let adapter = OpenAiAdapter;
    for base in ["https://api.openai.com/v1", "https://api.openai.com/v1/", " https://api.openai.com/v1 "] {
        let request = adapter.build(Operation::ChatCompletions, &ctx(base, None, Some("gpt-4o"))).unwrap();
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.url.as_str(), "https://api.openai.com/v1/chat/completions", "{base:?}");
        assert_eq!(header(&request, "authorization"), Some("Bearer sk-test"));
        assert!(request.headers["authorization"].is_sensitive());
        assert_eq!(header(&request, "content-type"), Some("application/json"));
    }
    let compatible = "https://dashscope.aliyuncs.com/compatible-mode/v1";
    let embeddings = adapter.build(Operation::Embeddings, &ctx(compatible, None, None)).unwrap();
    assert_eq!(embeddings.url.as_str(), "https://dashscope.aliyuncs.com/compatible-mode/v1/embeddings");
    let models = adapter.build(Operation::ListModels, &ctx("http://localhost:11434/v1", None, None)).unwrap();
    assert_eq!((&models.method, models.url.as_str()), (&Method::GET, "http://localhost:11434/v1/models"));
    assert_eq!(header(&models, "content-type"), None);
    assert_eq!(models.uri(), "http://localhost:11434/v1/models".parse::<http::Uri>().unwrap());
}

#[test]
fn openai_without_a_key_sends_no_authorization() {
    let context =
        RequestContext { base_url: "http://127.0.0.1:8000/v1", api_version: None, key: "", model: None, stream: false };
    let request = OpenAiAdapter.build(Operation::ChatCompletions, &context).unwrap();
    assert_eq!(header(&request, "authorization"), None);
}

#[test]
fn azure_deployment_urls_and_api_key() {
    let adapter = AzureAdapter;
    for base in
        ["https://res.openai.azure.com", "https://res.openai.azure.com/", "https://res.openai.azure.com/openai/"]
    {
        let request =
            adapter.build(Operation::ChatCompletions, &ctx(base, Some("2024-06-01"), Some("gpt-4o-prod"))).unwrap();
        assert_eq!(
            request.url.as_str(),
            "https://res.openai.azure.com/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-06-01",
            "{base}"
        );
        assert_eq!(header(&request, "api-key"), Some("sk-test"));
        assert!(request.headers["api-key"].is_sensitive());
        assert_eq!(header(&request, "authorization"), None);
    }
    let request =
        adapter.build(Operation::Embeddings, &ctx("https://res.openai.azure.com", None, Some("emb"))).unwrap();
    assert_eq!(
        request.url.as_str(),
        format!(
            "https://res.openai.azure.com/openai/deployments/emb/embeddings?api-version={AZURE_DEFAULT_API_VERSION}"
        )
    );
    let models = adapter.build(Operation::ListModels, &ctx("https://res.openai.azure.com", Some(""), None)).unwrap();
    assert_eq!(models.url.as_str(), "https://res.openai.azure.com/openai/models?api-version=2024-10-21");
    // A deployment name is one path segment, whatever it holds.
    let odd = adapter.build(Operation::ChatCompletions, &ctx("https://r.example", None, Some("a/b c"))).unwrap();
    assert_eq!(odd.url.path(), "/openai/deployments/a%2Fb%20c/chat/completions");
}

#[test]
fn azure_v1_api_has_no_deployment_in_the_path() {
    let request =
        AzureAdapter.build(Operation::ChatCompletions, &ctx("https://res.openai.azure.com", Some("v1"), None)).unwrap();
    assert_eq!(request.url.as_str(), "https://res.openai.azure.com/openai/v1/chat/completions");
    assert_eq!(header(&request, "api-key"), Some("sk-test"));
}

#[test]
fn build_errors() {
    assert_eq!(
        AzureAdapter.build(Operation::ChatCompletions, &ctx("https://r.example", None, None)).unwrap_err(),
        BuildError::MissingModel { provider: "azure", operation: Operation::ChatCompletions }
    );
    for base in ["not a url", "ftp://files.example/v1", "mailto:ops@example.com", ""] {
        assert!(
            matches!(
                OpenAiAdapter.build(Operation::ChatCompletions, &ctx(base, None, None)),
                Err(BuildError::InvalidBaseUrl { .. })
            ),
            "{base:?}"
        );
    }
    let bad_key = RequestContext {
        base_url: "https://api.openai.com/v1",
        api_version: None,
        key: "sk\nx",
        model: None,
        stream: false,
    };
    assert_eq!(OpenAiAdapter.build(Operation::ChatCompletions, &bad_key).unwrap_err(), BuildError::InvalidKey);
    assert_eq!(AzureAdapter.build(Operation::ListModels, &bad_key).unwrap_err(), BuildError::InvalidKey);
}

#[test]
fn registry_finds_adapters_by_provider_type() {
    let registry = Registry::default();
    assert_eq!(registry.providers().collect::<Vec<_>>(), ["openai", "azure", "anthropic", "gemini", "dashscope"]);
    assert_eq!(registry.get("openai").map(|a| a.name()), Some("openai"));
    assert_eq!(registry.get("azure").map(|a| a.wire_format()), Some(WireFormat::OpenAi));
    assert_eq!(registry.get("anthropic").map(|a| a.wire_format()), Some(WireFormat::Anthropic));
    assert!(registry.get_shared("azure").is_some());

    struct Custom;
    impl Adapter for Custom {
        fn name(&self) -> &'static str {
            "openai"
        }
        fn build(&self, _: Operation, _: &RequestContext<'_>) -> Result<UpstreamRequest, BuildError> {
            Err(BuildError::Unsupported { provider: "openai", operation: Operation::ListModels })
        }
    }
    let mut registry = Registry::default();
    assert!(registry.register(Arc::new(Custom)).is_some(), "replaces the built-in adapter");
    assert_eq!(registry.providers().count(), Registry::default().providers().count());
    assert!(registry.get("openai").unwrap().build(Operation::ListModels, &ctx("http://x", None, None)).is_err());
    assert_eq!(format!("{:?}", Registry::empty()), "[]");
}

fn classify(status: u16, body: &str) -> UpstreamFailure {
    OpenAiAdapter.classify(status, &HeaderMap::new(), body.as_bytes())
}

fn openai_error(kind: &str, code: &str, message: &str) -> String {
    serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": code}}).to_string()
}

#[test]
fn statuses_classify_as_documented() {
    let retry = UpstreamFailure::Retryable { retry_after: None };
    for status in [408, 429, 500, 502, 503, 504, 529] {
        assert_eq!(classify(status, ""), retry, "{status}");
    }
    for status in [400, 404, 405, 409, 413, 415, 422] {
        assert_eq!(classify(status, "{}"), UpstreamFailure::Fatal, "{status}");
    }
    for status in [401, 403] {
        assert_eq!(classify(status, "<html>"), UpstreamFailure::AuthFailed, "{status}");
    }
    assert_eq!(classify(402, ""), UpstreamFailure::OutOfBalance);
    assert_eq!(classify(302, ""), retry, "a proxy's redirect");
}

#[test]
fn bodies_that_mean_no_money_or_no_key() {
    let quota = openai_error(
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
    );
    assert_eq!(classify(429, &quota), UpstreamFailure::OutOfBalance);
    let spend = openai_error("insufficient_quota", "project_spend_limit_exceeded", "Budget reached.");
    assert_eq!(classify(429, &spend), UpstreamFailure::OutOfBalance);
    // OpenAI's older shape: the type says it, the code is null.
    let old = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":null}}"#;
    assert_eq!(classify(429, old), UpstreamFailure::OutOfBalance);
    // DeepSeek, DashScope compatible mode.
    assert_eq!(
        classify(402, r#"{"error":{"message":"Insufficient Balance","type":"unknown_error"}}"#),
        UpstreamFailure::OutOfBalance
    );
    let arrearage = r#"{"error":{"code":"Arrearage","message":"Access denied, please make sure your account is in good standing.","type":"Arrearage"}}"#;
    assert_eq!(classify(400, arrearage), UpstreamFailure::OutOfBalance);
    assert_eq!(
        classify(403, r#"{"code":"Arrearage","message":"...","request_id":"x"}"#),
        UpstreamFailure::OutOfBalance
    );
    // A key refused under another status.
    assert_eq!(
        classify(400, &openai_error("invalid_request_error", "invalid_api_key", "bad key")),
        UpstreamFailure::AuthFailed
    );
    // An ordinary rate limit is not a balance problem.
    let rate =
        openai_error("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 1s.");
    assert_eq!(classify(429, &rate), UpstreamFailure::Retryable { retry_after: None });
    // Nor is a bad request that mentions quotas in passing.
    let context = openai_error("invalid_request_error", "context_length_exceeded", "Too long; quota is fine.");
    assert_eq!(classify(400, &context), UpstreamFailure::Fatal);
}

#[test]
fn failure_helpers() {
    assert!(UpstreamFailure::CONNECTION.should_retry());
    assert!(!UpstreamFailure::CONNECTION.disables_channel());
    assert!(!UpstreamFailure::Fatal.should_retry());
    assert!(UpstreamFailure::AuthFailed.should_retry() && UpstreamFailure::AuthFailed.disables_channel());
    assert!(UpstreamFailure::OutOfBalance.should_retry() && UpstreamFailure::OutOfBalance.disables_channel());
}

#[test]
fn error_bodies_are_read_leniently() {
    let info = ErrorInfo::parse(br#"{"error":{"message":"m","type":"t","code":429}}"#).unwrap();
    assert_eq!(info, ErrorInfo { message: Some("m".into()), kind: Some("t".into()), code: Some("429".into()) });
    let info = ErrorInfo::parse(br#"{"error":"upstream timeout"}"#).unwrap();
    assert_eq!(info.message.as_deref(), Some("upstream timeout"));
    let info =
        ErrorInfo::parse(br#"[{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}]"#)
            .unwrap();
    assert_eq!((info.code.as_deref(), info.kind.as_deref()), (Some("400"), Some("INVALID_ARGUMENT")));
    assert_eq!(ErrorInfo::parse(b"<html>502</html>"), None);
    assert_eq!(ErrorInfo::parse(b"{}"), None);
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

#[test]
fn retry_after_headers() {
    let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
    let at = |pairs: &[(&'static str, &str)]| retry_after_at(&headers(pairs), now);
    assert_eq!(at(&[("retry-after", "1")]), Some(Duration::from_secs(1)));
    assert_eq!(at(&[("retry-after", " 0.5 ")]), Some(Duration::from_millis(500)));
    assert_eq!(at(&[("retry-after-ms", "250"), ("retry-after", "9")]), Some(Duration::from_millis(250)));
    assert_eq!(at(&[("retry-after-ms", "soon"), ("retry-after", "9")]), Some(Duration::from_secs(9)));
    assert_eq!(at(&[("retry-after", "Sun, 06 Nov 1994 08:50:07 GMT")]), Some(Duration::from_secs(30)));
    assert_eq!(at(&[("retry-after", "Sun, 06 Nov 1994 08:00:00 GMT")]), Some(Duration::ZERO), "a past date");
    assert_eq!(
        at(&[("retry-after", "Tue, 29 Feb 2028 23:59:59 GMT")]).map(|d| d.as_secs()),
        Some(1_835_481_599 - 784_111_777)
    );
    for bad in
        ["-1", "NaN", "inf", "1e400", "tomorrow", "Sun, 06 Nov 1994 08:49:37 PST", "Sun, 32 Nov 1994 08:49:37 GMT", ""]
    {
        assert_eq!(at(&[("retry-after", bad)]), None, "{bad:?}");
    }
    assert_eq!(at(&[]), None);
    // Through classify.
    let limited = OpenAiAdapter.classify(429, &headers(&[("retry-after", "2")]), b"");
    assert_eq!(limited, UpstreamFailure::Retryable { retry_after: Some(Duration::from_secs(2)) });
    assert!(retry_after(&headers(&[("retry-after", "3")])).is_some());
}
