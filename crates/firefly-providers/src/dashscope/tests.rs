use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};

use super::*;
use crate::adapter::Registry;
use crate::media::{ImageRequest, SpeechRequest};
use crate::transcode::TranscodeError;

fn ctx(base_url: &str) -> RequestContext<'_> {
    RequestContext { base_url, api_version: None, key: "sk-ds", model: Some("wan2.2-t2i-flash"), stream: false }
}

fn header<'a>(request: &'a UpstreamRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

#[test]
fn image_and_speech_urls_from_any_base_form() {
    let bases = [
        "https://dashscope.aliyuncs.com",
        "https://dashscope.aliyuncs.com/",
        "https://dashscope.aliyuncs.com/api/v1",
        " https://dashscope.aliyuncs.com/api/v1/ ",
        "https://dashscope.aliyuncs.com/compatible-mode/v1",
    ];
    for base in bases {
        let image = DashScopeAdapter.build(Operation::ImageGenerations, &ctx(base)).unwrap();
        assert_eq!(image.method, Method::POST);
        assert_eq!(
            image.url.as_str(),
            "https://dashscope.aliyuncs.com/api/v1/services/aigc/text2image/image-synthesis",
            "{base:?}"
        );
        assert_eq!(header(&image, "x-dashscope-async"), Some("enable"));
        assert_eq!(header(&image, "authorization"), Some("Bearer sk-ds"));
        assert!(image.headers["authorization"].is_sensitive());
        assert_eq!(header(&image, "content-type"), Some("application/json"));

        let speech = DashScopeAdapter.build(Operation::AudioSpeech, &ctx(base)).unwrap();
        assert_eq!(
            speech.url.as_str(),
            "https://dashscope.aliyuncs.com/api/v1/services/aigc/multimodal-generation/generation"
        );
        assert_eq!(header(&speech, "x-dashscope-async"), None, "speech is synchronous");
        assert_eq!(header(&speech, "content-type"), Some("application/json"));
    }
    let intl =
        DashScopeAdapter.build(Operation::AudioSpeech, &ctx("https://dashscope-intl.aliyuncs.com/api/v1")).unwrap();
    assert_eq!(
        intl.url.as_str(),
        "https://dashscope-intl.aliyuncs.com/api/v1/services/aigc/multimodal-generation/generation"
    );
    // A gateway in front of DashScope, under a path prefix.
    let proxied = DashScopeAdapter.build(Operation::ImageGenerations, &ctx("http://gw.local:8080/ds")).unwrap();
    assert_eq!(proxied.url.as_str(), "http://gw.local:8080/ds/api/v1/services/aigc/text2image/image-synthesis");
}

#[test]
fn other_operations_and_bad_channels_are_refused() {
    for op in [
        Operation::ChatCompletions,
        Operation::Embeddings,
        Operation::ListModels,
        Operation::CountTokens,
        Operation::AudioTranscriptions,
    ] {
        let err = DashScopeAdapter.build(op, &ctx("https://dashscope.aliyuncs.com")).unwrap_err();
        assert_eq!(err, BuildError::Unsupported { provider: "dashscope", operation: op });
    }
    assert!(matches!(
        DashScopeAdapter.build(Operation::ImageGenerations, &ctx("ftp://dashscope.aliyuncs.com")),
        Err(BuildError::InvalidBaseUrl { .. })
    ));
    assert!(matches!(
        DashScopeAdapter.build(Operation::ImageGenerations, &ctx("not a url")),
        Err(BuildError::InvalidBaseUrl { .. })
    ));
    let bad_key = RequestContext { key: "sk\nx", ..ctx("https://dashscope.aliyuncs.com") };
    assert_eq!(DashScopeAdapter.build(Operation::AudioSpeech, &bad_key).unwrap_err(), BuildError::InvalidKey);
    let no_key = RequestContext { key: "", ..ctx("https://dashscope.aliyuncs.com") };
    assert_eq!(header(&DashScopeAdapter.build(Operation::AudioSpeech, &no_key).unwrap(), "authorization"), None);
}

#[test]
fn registered_by_default() {
    let registry = Registry::default();
    let adapter = registry.get("dashscope").unwrap();
    assert_eq!((adapter.name(), adapter.wire_format()), ("dashscope", WireFormat::DashScope));
    let failure = adapter.classify(400, &HeaderMap::new(), br#"{"code":"Arrearage","message":"Access denied"}"#);
    assert_eq!(failure, UpstreamFailure::OutOfBalance, "the adapter classifies the DashScope way");
}

#[test]
fn task_polling_request() {
    let id = "0385dc79-5ff8-4d82-bcb6-xxxxxx";
    let poll = task_request("https://dashscope.aliyuncs.com/api/v1/", "sk-ds", id).unwrap();
    assert_eq!(poll.method, Method::GET);
    assert_eq!(poll.url.as_str(), format!("https://dashscope.aliyuncs.com/api/v1/tasks/{id}"));
    assert_eq!(header(&poll, "authorization"), Some("Bearer sk-ds"));
    assert!(poll.headers["authorization"].is_sensitive());
    assert_eq!(header(&poll, "content-type"), None);
    assert_eq!(header(&poll, "x-dashscope-async"), None);
    let long = "a".repeat(129);
    for bad in ["", "../secrets", "a b", "a/b", "a?b=c", "é", long.as_str()] {
        let err = task_request("https://dashscope.aliyuncs.com", "sk-ds", bad).unwrap_err();
        assert!(matches!(err, BuildError::InvalidBaseUrl { .. }), "{bad:?}");
    }
    assert!(task_request("https://dashscope.aliyuncs.com", "sk-ds", &"a".repeat(128)).is_ok());
}

// ---------------------------------------------------------------- images

fn image(body: &str) -> ImageRequest {
    ImageRequest::parse(Bytes::copy_from_slice(body.as_bytes())).unwrap()
}

#[test]
fn image_request_in_dashscope_shape() {
    let req = image(r#"{"model":"wan","prompt":"一间有着精致窗户的花店","n":2,"size":"1024x1024","quality":"hd"}"#);
    assert_eq!(
        String::from_utf8(image_request_from_openai(&req, "wan2.2-t2i-flash")).unwrap(),
        r#"{"input":{"prompt":"一间有着精致窗户的花店"},"model":"wan2.2-t2i-flash","parameters":{"n":2,"size":"1024*1024"}}"#
    );
    let auto = image(r#"{"model":"wan","prompt":"a \"cat\"","size":"auto"}"#);
    assert_eq!(
        String::from_utf8(image_request_from_openai(&auto, "wanx2.1-t2i-turbo")).unwrap(),
        r#"{"input":{"prompt":"a \"cat\""},"model":"wanx2.1-t2i-turbo","parameters":{"n":1}}"#
    );
    let wide = image(r#"{"model":"wan","prompt":"p","size":"1280x720"}"#);
    let body: Value = serde_json::from_slice(&image_request_from_openai(&wide, "m")).unwrap();
    assert_eq!(body["parameters"]["size"], "1280*720");
}

#[test]
fn task_submission_answer() {
    let answer = br#"{"output":{"task_status":"PENDING","task_id":"0385dc79-5ff8-4d82-bcb6-xxxxxx"},"request_id":"4909100c-7b5a-9f92-bfe5-xxxxxx"}"#;
    assert_eq!(parse_task_submit(answer).unwrap(), "0385dc79-5ff8-4d82-bcb6-xxxxxx");
    let errors: [&[u8]; 5] = [
        br#"{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"r"}"#,
        br#"{"output":{"task_status":"PENDING"}}"#,
        br#"{"output":{"task_id":"../x","task_status":"PENDING"}}"#,
        b"<html>bad gateway</html>",
        b"[]",
    ];
    for body in errors {
        let err = parse_task_submit(body).unwrap_err();
        assert!(matches!(err, TranscodeError::Upstream(_)), "{err:?}");
    }
    let err = parse_task_submit(errors[0]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the upstream sent an invalid answer: a DashScope task answer has no output (InvalidApiKey: Invalid API-key provided.)"
    );
}

fn poll(status: &str, extra: &str) -> Vec<u8> {
    format!(r#"{{"request_id":"r-1","output":{{"task_id":"t-1","task_status":"{status}","submit_time":"2025-01-08 16:03:59.840"{extra}}}}}"#)
        .into_bytes()
}

#[test]
fn task_states() {
    assert_eq!(parse_task(&poll("PENDING", "")).unwrap(), TaskState::Pending);
    assert_eq!(parse_task(&poll("SUSPENDED", "")).unwrap(), TaskState::Pending);
    assert_eq!(
        parse_task(&poll("RUNNING", r#","scheduled_time":"2025-01-08 16:03:59.863""#)).unwrap(),
        TaskState::Running
    );

    let succeeded = br#"{"request_id":"6bc1c1c1","output":{"task_id":"t-1","task_status":"SUCCEEDED","submit_time":"2025-01-08 16:03:59.840","end_time":"2025-01-08 16:04:10.660","results":[{"orig_prompt":"flowers","actual_prompt":"A flower shop with delicate windows","url":"https://dashscope-result-wlcb.oss-cn-wulanchabu.aliyuncs.com/1.png?Expires=1736409850"},{"orig_prompt":"flowers","actual_prompt":"Another","url":"https://dashscope-result-wlcb.oss-cn-wulanchabu.aliyuncs.com/2.png"}],"task_metrics":{"TOTAL":2,"SUCCEEDED":2,"FAILED":0}},"usage":{"image_count":2}}"#;
    assert_eq!(
        parse_task(succeeded).unwrap(),
        TaskState::Succeeded {
            urls: vec![
                "https://dashscope-result-wlcb.oss-cn-wulanchabu.aliyuncs.com/1.png?Expires=1736409850".to_owned(),
                "https://dashscope-result-wlcb.oss-cn-wulanchabu.aliyuncs.com/2.png".to_owned(),
            ],
            image_count: 2,
        }
    );
    // One of two images refused: one URL, one billed.
    let partial = br#"{"output":{"task_id":"t","task_status":"SUCCEEDED","results":[{"url":"https://x/1.png"},{"code":"DataInspectionFailed","message":"Output data may contain inappropriate content."}]},"usage":{"image_count":1}}"#;
    assert_eq!(
        parse_task(partial).unwrap(),
        TaskState::Succeeded { urls: vec!["https://x/1.png".to_owned()], image_count: 1 }
    );
    // No usage: the URLs are counted.
    let no_usage = poll("SUCCEEDED", r#","results":[{"url":"https://x/1.png"}]"#);
    assert_eq!(
        parse_task(&no_usage).unwrap(),
        TaskState::Succeeded { urls: vec!["https://x/1.png".to_owned()], image_count: 1 }
    );
    let none = poll(
        "SUCCEEDED",
        r#","results":[{"code":"DataInspectionFailed","message":"Output data may contain inappropriate content."}]"#,
    );
    assert_eq!(
        parse_task(&none).unwrap(),
        TaskState::Failed {
            code: "DataInspectionFailed".to_owned(),
            message: "Output data may contain inappropriate content.".to_owned()
        }
    );

    let failed = poll(
        "FAILED",
        r#","code":"InvalidParameter","message":"The size is not match the allowed size ['1024*1024', '720*1280', '1280*720']""#,
    );
    assert_eq!(
        parse_task(&failed).unwrap(),
        TaskState::Failed {
            code: "InvalidParameter".to_owned(),
            message: "The size is not match the allowed size ['1024*1024', '720*1280', '1280*720']".to_owned()
        }
    );
    let canceled = parse_task(&poll("CANCELED", "")).unwrap();
    assert!(matches!(&canceled, TaskState::Failed { code, .. } if code == "TaskCanceled"), "{canceled:?}");
    let unknown = parse_task(br#"{"request_id":"r","output":{"task_id":"t","task_status":"UNKNOWN"}}"#).unwrap();
    assert!(matches!(&unknown, TaskState::Failed { code, .. } if code == "UnknownTask"), "{unknown:?}");
    let bare_failure = parse_task(&poll("FAILED", "")).unwrap();
    assert_eq!(
        bare_failure,
        TaskState::Failed { code: "TaskFailed".to_owned(), message: "the image task failed".to_owned() }
    );

    for body in
        [poll("DONE", ""), br#"{"output":{"task_id":"t"}}"#.to_vec(), b"{".to_vec(), br#"{"output":[]}"#.to_vec()]
    {
        assert!(parse_task(&body).is_err(), "{}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn images_answer_in_openai_shape() {
    let urls = vec!["https://x/1.png?a=1&b=2".to_owned(), "https://x/\"2\".png".to_owned()];
    assert_eq!(
        String::from_utf8(images_response(&urls, 1_736_409_850)).unwrap(),
        r#"{"created":1736409850,"data":[{"url":"https://x/1.png?a=1&b=2"},{"url":"https://x/\"2\".png"}]}"#
    );
    assert_eq!(crate::media::images_billed(&images_response(&urls, 0)), 2);
    assert_eq!(images_response(&[], 5), br#"{"created":5,"data":[]}"#);
}

// ---------------------------------------------------------------- speech

#[test]
fn speech_request_in_dashscope_shape() {
    let req = SpeechRequest::parse(Bytes::from_static(
        br#"{"model":"tts","input":"Hello, \"world\"","voice":"Cherry","speed":2,"response_format":"wav"}"#,
    ))
    .unwrap();
    assert_eq!(
        String::from_utf8(speech_request_from_openai(&req, "qwen3-tts-flash")).unwrap(),
        r#"{"input":{"text":"Hello, \"world\"","voice":"Cherry"},"model":"qwen3-tts-flash"}"#
    );
    let instruct = SpeechRequest::parse(Bytes::from_static(
        r#"{"model":"tts","input":"你好","voice":{"id":"qwen-tts-vc-1"},"instructions":"Speak fast."}"#.as_bytes(),
    ))
    .unwrap();
    assert_eq!(
        String::from_utf8(speech_request_from_openai(&instruct, "qwen3-tts-instruct-flash")).unwrap(),
        r#"{"input":{"instructions":"Speak fast.","text":"你好","voice":"qwen-tts-vc-1"},"model":"qwen3-tts-instruct-flash"}"#
    );
}

#[test]
fn speech_answers() {
    let by_url = br#"{"output":{"finish_reason":"stop","audio":{"expires_at":1758187426,"data":"","id":"audio_a4b5c6","url":"http://dashscope-result-sh.oss-cn-shanghai.aliyuncs.com/1d/ab/output.wav?Expires=1758187426"}},"usage":{"characters":195},"request_id":"5c6f0b2c-1b6b"}"#;
    let result = parse_speech(by_url).unwrap();
    assert_eq!(
        result,
        SpeechResult {
            audio: SpeechAudio::Url(
                "http://dashscope-result-sh.oss-cn-shanghai.aliyuncs.com/1d/ab/output.wav?Expires=1758187426"
                    .to_owned()
            ),
            expires_at: Some(1_758_187_426),
            characters: Some(195),
            input_tokens: None,
            output_tokens: None,
            finish_reason: Some("stop".to_owned()),
        }
    );
    assert_eq!(result.content_type(), "audio/wav");

    let tokens = br#"{"output":{"audio":{"url":"https://x/a.MP3#t","expires_at":1}},"usage":{"input_tokens":80,"output_tokens":1200,"input_tokens_details":{"text_tokens":80}}}"#;
    let result = parse_speech(tokens).unwrap();
    assert_eq!((result.input_tokens, result.output_tokens, result.characters), (Some(80), Some(1200), None));
    assert_eq!(result.content_type(), "audio/mpeg");

    // Inline audio (padded, unpadded, with line breaks) is decoded and sniffed.
    for data in ["UklGRiQAAABXQVZFZm10IA==", "UklGRiQAAABXQVZFZm10IA", "UklGRiQA\\nAABXQVZF\\r\\nZm10IA=="] {
        let body = format!(r#"{{"output":{{"audio":{{"data":"{data}","url":"https://x/ignored.mp3"}}}}}}"#);
        let result = parse_speech(body.as_bytes()).unwrap();
        assert_eq!(result.audio, SpeechAudio::Data(b"RIFF$\0\0\0WAVEfmt ".to_vec()), "{data:?}");
        assert_eq!(result.content_type(), "audio/wav");
    }
    let mp3 = parse_speech(br#"{"output":{"audio":{"data":"SUQzBAA="}}}"#).unwrap();
    assert_eq!(mp3.content_type(), "audio/mpeg");

    let errors: [&[u8]; 6] = [
        br#"{"output":{"audio":{"data":"@@@@"}}}"#,
        br#"{"output":{"audio":{"data":"","url":""}}}"#,
        br#"{"output":{"finish_reason":"stop"}}"#,
        br#"{"code":"InvalidParameter","message":"Voice 'alloy' is not supported.","request_id":"r"}"#,
        b"",
        br#"{"output":{"audio":{"url":7}}}"#,
    ];
    for body in errors {
        assert!(matches!(parse_speech(body), Err(TranscodeError::Upstream(_))), "{}", String::from_utf8_lossy(body));
    }
}

// ---------------------------------------------------------------- errors

fn ds_error(code: &str) -> String {
    format!(r#"{{"code":"{code}","message":"m","request_id":"r-1"}}"#)
}

#[test]
fn classification_table() {
    let retry = UpstreamFailure::Retryable { retry_after: None };
    let cases = [
        (401, ds_error("InvalidApiKey"), UpstreamFailure::AuthFailed),
        (400, ds_error("InvalidApiKey"), UpstreamFailure::AuthFailed),
        (403, ds_error("AccessDenied"), UpstreamFailure::AuthFailed),
        (403, ds_error("AccessDenied.Unpurchased"), UpstreamFailure::AuthFailed),
        (400, ds_error("Arrearage"), UpstreamFailure::OutOfBalance),
        (403, ds_error("AllocationQuota.FreeTierOnly"), UpstreamFailure::OutOfBalance),
        (402, String::new(), UpstreamFailure::OutOfBalance),
        (429, ds_error("Throttling"), retry),
        (429, ds_error("Throttling.RateQuota"), retry),
        (429, ds_error("Throttling.AllocationQuota"), retry),
        (400, ds_error("Throttling.RateQuota"), retry),
        (429, String::new(), retry),
        (500, ds_error("InternalError"), retry),
        (500, ds_error("InternalError.Algo"), retry),
        (503, "<html>Service Unavailable</html>".to_owned(), retry),
        (408, ds_error("RequestTimeOut"), retry),
        (400, ds_error("InvalidParameter"), UpstreamFailure::Fatal),
        (400, ds_error("DataInspectionFailed"), UpstreamFailure::Fatal),
        (400, ds_error("InvalidParameter.DataInspection"), UpstreamFailure::Fatal),
        (400, ds_error("BadRequest.EmptyInput"), UpstreamFailure::Fatal),
        (404, ds_error("ModelNotFound"), UpstreamFailure::Fatal),
        (413, ds_error("BadRequest.TooLarge"), UpstreamFailure::Fatal),
        (400, String::new(), UpstreamFailure::Fatal),
        (302, String::new(), retry),
    ];
    for (status, body, expected) in cases {
        assert_eq!(classify(status, &HeaderMap::new(), body.as_bytes()), expected, "{status} {body}");
    }
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", HeaderValue::from_static("3"));
    assert_eq!(
        DashScopeAdapter.classify(429, &headers, ds_error("Throttling.RateQuota").as_bytes()),
        UpstreamFailure::Retryable { retry_after: Some(Duration::from_secs(3)) }
    );
}

#[test]
fn failed_task_classification() {
    assert_eq!(classify_task_failure("DataInspectionFailed"), UpstreamFailure::Fatal);
    assert_eq!(classify_task_failure("InvalidParameter"), UpstreamFailure::Fatal);
    assert_eq!(classify_task_failure("TaskCanceled"), UpstreamFailure::Fatal);
    assert_eq!(classify_task_failure("InternalError.Timeout"), UpstreamFailure::Retryable { retry_after: None });
    assert_eq!(classify_task_failure("Throttling"), UpstreamFailure::Retryable { retry_after: None });
    assert_eq!(classify_task_failure("Arrearage"), UpstreamFailure::OutOfBalance);
    assert_eq!(classify_task_failure("InvalidApiKey"), UpstreamFailure::AuthFailed);
}

fn openai_error(status: u16, body: &str) -> Value {
    serde_json::from_slice(&error_to_openai(status, body.as_bytes())).unwrap()
}

#[test]
fn errors_in_openai_shape() {
    let body = r#"{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"fb53c4ec-1c12-4fc4-a580-cdb7c3261fc1"}"#;
    assert_eq!(
        String::from_utf8(error_to_openai(401, body.as_bytes())).unwrap(),
        r#"{"error":{"code":"invalid_api_key","message":"Invalid API-key provided. (DashScope InvalidApiKey, request fb53c4ec-1c12-4fc4-a580-cdb7c3261fc1)","param":null,"type":"invalid_request_error"}}"#
    );
    let cases = [
        (400, ds_error("Arrearage"), "insufficient_quota", Some("insufficient_quota")),
        (429, ds_error("Throttling.RateQuota"), "requests", Some("rate_limit_exceeded")),
        (400, ds_error("DataInspectionFailed"), "invalid_request_error", Some("content_policy_violation")),
        (400, ds_error("InvalidParameter"), "invalid_request_error", Some("InvalidParameter")),
        (500, ds_error("InternalError.Algo"), "server_error", Some("InternalError.Algo")),
        (502, "Bad Gateway".to_owned(), "server_error", None),
        (429, String::new(), "requests", Some("rate_limit_exceeded")),
    ];
    for (status, body, kind, code) in cases {
        let error = openai_error(status, &body);
        assert_eq!(error["error"]["type"], kind, "{status} {body}");
        assert_eq!(error["error"]["code"].as_str(), code, "{status} {body}");
        assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(openai_error(502, "Bad Gateway")["error"]["message"], "The upstream answered HTTP 502.");
    // A failed task's poll: code and message under `output`.
    let failed = String::from_utf8(poll(
        "FAILED",
        r#","code":"DataInspectionFailed","message":"Input data may contain inappropriate content.""#,
    ))
    .unwrap();
    let error = openai_error(400, &failed);
    assert_eq!(error["error"]["code"], "content_policy_violation");
    assert_eq!(
        error["error"]["message"],
        "Input data may contain inappropriate content. (DashScope DataInspectionFailed, request r-1)"
    );
}

/// Every documented DashScope error as the client sees it, reviewed as one snapshot.
#[test]
fn error_shapes_snapshot() {
    let documented = [
        (400, "InvalidParameter", "Required parameter(s) missing or invalid, please check the request parameters."),
        (400, "DataInspectionFailed", "Input or output data may contain inappropriate content."),
        (400, "Arrearage", "Access denied, please make sure your account is in good standing."),
        (401, "InvalidApiKey", "Invalid API-key provided."),
        (
            403,
            "AccessDenied.Unpurchased",
            "Access to model denied. Please make sure you are eligible for using the model.",
        ),
        (429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
        (500, "InternalError", "An internal error has occured, please try again later or contact service support."),
    ];
    let mut out = String::new();
    for (status, code, message) in documented {
        let body = format!(r#"{{"code":"{code}","message":"{message}","request_id":"req-{status}"}}"#);
        let failure = classify(status, &HeaderMap::new(), body.as_bytes());
        let client = String::from_utf8(error_to_openai(status, body.as_bytes())).unwrap();
        out.push_str(&format!("{status} {code} => {failure:?}\n  {client}\n"));
    }
    insta::assert_snapshot!(out);
}
