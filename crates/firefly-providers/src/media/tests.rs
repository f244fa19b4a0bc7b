use bytes::Bytes;

use super::*;
use crate::openai::RequestError;

fn image(body: &str) -> Result<ImageRequest, RequestError> {
    ImageRequest::parse(Bytes::copy_from_slice(body.as_bytes()))
}

fn speech(body: &str) -> Result<SpeechRequest, RequestError> {
    SpeechRequest::parse(Bytes::copy_from_slice(body.as_bytes()))
}

// ---------------------------------------------------------------- images

#[test]
fn image_request_as_documented_by_openai() {
    let req = image(r#"{"model":"dall-e-3","prompt":"A cute baby sea otter","n":1,"size":"1024x1024"}"#).unwrap();
    assert_eq!(req.model(), "dall-e-3");
    assert_eq!(req.prompt(), "A cute baby sea otter");
    assert_eq!(req.n(), 1);
    assert_eq!(req.size(), Some(ImageSize::Pixels { width: 1024, height: 1024 }));
    assert_eq!(req.response_format(), None);
    assert_eq!(req.quality(), None);

    let req = image(
        r#"{"model":"dall-e-2","prompt":"otters","n":3,"size":"512x256","response_format":"b64_json","quality":"standard","style":"natural","user":"u-1"}"#,
    )
    .unwrap();
    assert_eq!((req.n(), req.size()), (3, Some(ImageSize::Pixels { width: 512, height: 256 })));
    assert_eq!(req.response_format(), Some(ImageFormat::B64Json));
    assert_eq!((req.quality(), req.style()), (Some("standard"), Some("natural")));

    let req =
        image(r#"{"model":"gpt-image-1","prompt":"a lighthouse","size":"auto","quality":"high","n":null}"#).unwrap();
    assert_eq!((req.n(), req.size(), req.quality()), (1, Some(ImageSize::Auto), Some("high")));
    assert_eq!(ImageFormat::Url.as_str(), "url");
}

#[test]
fn image_upstream_body_replaces_only_the_model() {
    let body = r#"{ "prompt" : "a \"quoted\" otter", "model":"dall-e-3" ,"size":"1024x1024","n":1.0e0}"#;
    // `n` written as a float is refused: the body below has an integer.
    assert!(image(body).is_err());
    let body =
        r#"{ "prompt" : "a \"quoted\" otter", "model":"dall-e-3" ,"size":"1024x1024","extra":[1.50,{"k":null}]}"#;
    let req = image(body).unwrap();
    let same = req.upstream_body(Some("dall-e-3"));
    assert_eq!(same.as_ptr(), req.body().as_ptr(), "nothing to change: the same buffer");
    assert_eq!(req.upstream_body(None).as_ptr(), req.body().as_ptr());
    let mapped = req.upstream_body(Some("dalle3-\"prod\""));
    assert_eq!(
        std::str::from_utf8(&mapped).unwrap(),
        r#"{ "prompt" : "a \"quoted\" otter", "model":"dalle3-\"prod\"" ,"size":"1024x1024","extra":[1.50,{"k":null}]}"#
    );
}

#[test]
fn image_request_errors_name_the_field() {
    let long = format!(r#"{{"model":"m","prompt":"p","size":"{}x1"}}"#, "9".repeat(6));
    let cases: Vec<(&str, &str, Option<&str>)> = vec![
        ("", "invalid_json", None),
        ("{\"model\":", "invalid_json", None),
        ("{} x", "invalid_json", None),
        ("[1]", "invalid_type", None),
        ("\"text\"", "invalid_type", None),
        (r#"{"prompt":"p"}"#, "missing_required_parameter", Some("model")),
        (r#"{"model":null,"prompt":"p"}"#, "missing_required_parameter", Some("model")),
        (r#"{"model":"","prompt":"p"}"#, "invalid_value", Some("model")),
        (r#"{"model":3,"prompt":"p"}"#, "invalid_type", Some("model")),
        (r#"{"model":"m"}"#, "missing_required_parameter", Some("prompt")),
        (r#"{"model":"m","prompt":""}"#, "invalid_value", Some("prompt")),
        (r#"{"model":"m","prompt":["p"]}"#, "invalid_type", Some("prompt")),
        (r#"{"model":"m","prompt":"p","n":0}"#, "invalid_value", Some("n")),
        (r#"{"model":"m","prompt":"p","n":11}"#, "invalid_value", Some("n")),
        (r#"{"model":"m","prompt":"p","n":-1}"#, "invalid_type", Some("n")),
        (r#"{"model":"m","prompt":"p","n":"2"}"#, "invalid_type", Some("n")),
        (r#"{"model":"m","prompt":"p","n":1.5}"#, "invalid_type", Some("n")),
        (r#"{"model":"m","prompt":"p","size":"1024"}"#, "invalid_value", Some("size")),
        (r#"{"model":"m","prompt":"p","size":"0x1024"}"#, "invalid_value", Some("size")),
        (r#"{"model":"m","prompt":"p","size":"1024X1024"}"#, "invalid_value", Some("size")),
        (r#"{"model":"m","prompt":"p","size":"+1x1"}"#, "invalid_value", Some("size")),
        (r#"{"model":"m","prompt":"p","size":"1024*1024"}"#, "invalid_value", Some("size")),
        (r#"{"model":"m","prompt":"p","size":"AUTO"}"#, "invalid_value", Some("size")),
        (&long, "invalid_value", Some("size")),
        (r#"{"model":"m","prompt":"p","size":1024}"#, "invalid_type", Some("size")),
        (r#"{"model":"m","prompt":"p","response_format":"png"}"#, "invalid_value", Some("response_format")),
        (r#"{"model":"m","prompt":"p","response_format":true}"#, "invalid_type", Some("response_format")),
        (r#"{"model":"m","prompt":"p","quality":1}"#, "invalid_type", Some("quality")),
        (r#"{"model":"m","prompt":"p","style":{}}"#, "invalid_type", Some("style")),
        (r#"{"model":"m","model":"n","prompt":"p"}"#, "duplicate_parameter", Some("model")),
        (r#"{"model":"m","prompt":"p","\u0070rompt":"q"}"#, "duplicate_parameter", Some("prompt")),
    ];
    for (body, code, param) in cases {
        let err = image(body).unwrap_err();
        assert_eq!((err.code(), err.param()), (code, param), "{body}: {err}");
    }
    let err = image(r#"{"model":"m","prompt":"p","n":11}"#).unwrap_err();
    assert_eq!(err.to_string(), "Invalid value for 'n': must be between 1 and 10.");
}

#[test]
fn images_billed_counts_data_entries() {
    let dalle = br#"{"created":1713833628,"data":[{"url":"https://a/1.png","revised_prompt":"An otter"},{"url":"https://a/2.png"}]}"#;
    assert_eq!(images_billed(dalle), 2);
    let gpt_image = br#"{"created":1713833628,"data":[{"b64_json":"iVBORw0KGgo="}],"usage":{"total_tokens":100,"input_tokens":50,"output_tokens":50,"input_tokens_details":{"text_tokens":10,"image_tokens":40}}}"#;
    assert_eq!(images_billed(gpt_image), 1);
    assert_eq!(image_usage(gpt_image), Some(ImageUsage { input_tokens: 50, output_tokens: 50, total_tokens: 100 }));
    assert_eq!(image_usage(dalle), None);
    assert_eq!(images_billed(br#"{"created":1,"data":[]}"#), 0);
    assert_eq!(images_billed(br#"{"error":{"message":"bad","type":"invalid_request_error"}}"#), 0);
    assert_eq!(images_billed(br#"{"data":{"url":"x"}}"#), 0);
    assert_eq!(images_billed(b"not json"), 0);
    assert_eq!(images_billed(b"[]"), 0);
}

// ---------------------------------------------------------------- speech

#[test]
fn speech_request_as_documented_by_openai() {
    let req = speech(
        r#"{"model":"gpt-4o-mini-tts","input":"The quick brown fox jumped over the lazy dog.","voice":"coral","instructions":"Speak in a cheerful and positive tone.","response_format":"wav","speed":1.25}"#,
    )
    .unwrap();
    assert_eq!(req.model(), "gpt-4o-mini-tts");
    assert_eq!(req.characters(), 45);
    assert_eq!(req.voice(), "coral");
    assert_eq!(req.response_format(), SpeechFormat::Wav);
    assert_eq!(req.content_type(), "audio/wav");
    assert_eq!(req.speed(), Some(1.25));
    assert_eq!(req.instructions(), Some("Speak in a cheerful and positive tone."));
    assert!(!req.stream_sse());

    let req = speech(r#"{"model":"tts-1","input":"日本語 e\u0301!","voice":{"id":"voice_1234"}}"#).unwrap();
    assert_eq!(req.input(), "日本語 e\u{301}!");
    assert_eq!(req.characters(), 7, "scalar values, not bytes or graphemes");
    assert_eq!(req.voice(), "voice_1234");
    assert_eq!((req.response_format(), req.content_type()), (SpeechFormat::Mp3, "audio/mpeg"));

    let req =
        speech(r#"{"model":"m","input":"x","voice":"alloy","stream_format":"sse","response_format":"pcm"}"#).unwrap();
    assert!(req.stream_sse());
    assert_eq!(req.content_type(), "text/event-stream");
    let formats = [("mp3", "audio/mpeg"), ("opus", "audio/ogg"), ("aac", "audio/aac"), ("flac", "audio/flac")];
    for (format, content_type) in formats.into_iter().chain([("wav", "audio/wav"), ("pcm", "audio/pcm")]) {
        let body = format!(r#"{{"model":"m","input":"x","voice":"v","response_format":"{format}"}}"#);
        let req = speech(&body).unwrap();
        assert_eq!((req.response_format().as_str(), req.content_type()), (format, content_type));
    }
}

#[test]
fn speech_input_limit_counts_characters() {
    let at_limit = format!(r#"{{"model":"m","voice":"v","input":"{}"}}"#, "日".repeat(4096));
    assert_eq!(speech(&at_limit).unwrap().characters(), 4096);
    let over = format!(r#"{{"model":"m","voice":"v","input":"{}"}}"#, "a".repeat(4097));
    let err = speech(&over).unwrap_err();
    assert_eq!((err.code(), err.param()), ("invalid_value", Some("input")));
}

#[test]
fn speech_request_errors_name_the_field() {
    let cases = [
        ("nope", "invalid_json", None),
        ("[]", "invalid_type", None),
        (r#"{"input":"x","voice":"v"}"#, "missing_required_parameter", Some("model")),
        (r#"{"model":"m","voice":"v"}"#, "missing_required_parameter", Some("input")),
        (r#"{"model":"m","input":"","voice":"v"}"#, "invalid_value", Some("input")),
        (r#"{"model":"m","input":7,"voice":"v"}"#, "invalid_type", Some("input")),
        (r#"{"model":"m","input":"x"}"#, "missing_required_parameter", Some("voice")),
        (r#"{"model":"m","input":"x","voice":null}"#, "missing_required_parameter", Some("voice")),
        (r#"{"model":"m","input":"x","voice":""}"#, "invalid_value", Some("voice")),
        (r#"{"model":"m","input":"x","voice":{"id":""}}"#, "invalid_value", Some("voice")),
        (r#"{"model":"m","input":"x","voice":3}"#, "invalid_type", Some("voice")),
        (r#"{"model":"m","input":"x","voice":{"name":"v"}}"#, "invalid_type", Some("voice")),
        (r#"{"model":"m","input":"x","voice":{"id":5}}"#, "invalid_type", Some("voice")),
        (r#"{"model":"m","input":"x","voice":"v","response_format":"ogg"}"#, "invalid_value", Some("response_format")),
        (r#"{"model":"m","input":"x","voice":"v","response_format":"MP3"}"#, "invalid_value", Some("response_format")),
        (r#"{"model":"m","input":"x","voice":"v","speed":0.2}"#, "invalid_value", Some("speed")),
        (r#"{"model":"m","input":"x","voice":"v","speed":4.01}"#, "invalid_value", Some("speed")),
        (r#"{"model":"m","input":"x","voice":"v","speed":"fast"}"#, "invalid_type", Some("speed")),
        (r#"{"model":"m","input":"x","voice":"v","instructions":[]}"#, "invalid_type", Some("instructions")),
        (r#"{"model":"m","input":"x","voice":"v","stream_format":"chunks"}"#, "invalid_value", Some("stream_format")),
        (r#"{"model":"m","input":"x","input":"y","voice":"v"}"#, "duplicate_parameter", Some("input")),
    ];
    for (body, code, param) in cases {
        let err = speech(body).unwrap_err();
        assert_eq!((err.code(), err.param()), (code, param), "{body}: {err}");
    }
    for speed in ["0.25", "4", "4.0", "1"] {
        let body = format!(r#"{{"model":"m","input":"x","voice":"v","speed":{speed}}}"#);
        assert!(speech(&body).is_ok(), "{body}");
    }
}

#[test]
fn speech_upstream_body_replaces_only_the_model() {
    let body = "{\"model\":\"tts-1\",\n  \"input\":\"héllo\",\"voice\":{\"id\":\"v\"},\"speed\":1.000}";
    let req = speech(body).unwrap();
    assert_eq!(req.upstream_body(Some("tts-1")).as_ptr(), req.body().as_ptr());
    let mapped = req.upstream_body(Some("tts-1-hd"));
    assert_eq!(
        &mapped[..],
        "{\"model\":\"tts-1-hd\",\n  \"input\":\"héllo\",\"voice\":{\"id\":\"v\"},\"speed\":1.000}".as_bytes()
    );
}

// ---------------------------------------------------------------- multipart

const BOUNDARY: &str = "----firefly7MA4YWxkTrZu0gW";

/// A body as the OpenAI SDKs send it: CRLF lines, text fields, one file part.
fn upload(fields: &[(&str, &str)], file: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"speech.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

fn transcription(content_type: &str, body: &[u8]) -> Result<TranscriptionRequest, TranscriptionError> {
    TranscriptionRequest::parse(content_type, Bytes::copy_from_slice(body))
}

/// A WAV header for `data_len` bytes of 16-bit mono PCM at `rate` Hz, then the data.
fn wav(rate: u32, data_len: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend((0..data_len).map(|i| (i % 251) as u8));
    out
}

#[test]
fn transcription_upload_as_the_sdks_send_it() {
    let audio = wav(16_000, 8_000);
    let body = upload(&[("model", "whisper-1"), ("response_format", "verbose_json"), ("language", "en")], &audio);
    let req = transcription(&content_type(), &body).unwrap();
    assert_eq!(req.model(), "whisper-1");
    assert_eq!(req.response_format(), TranscriptionFormat::VerboseJson);
    assert!(req.response_format().is_json());
    assert_eq!(req.file(), &audio[..]);
    assert_eq!(req.file_len(), audio.len());
    assert_eq!(req.file_name(), "speech.wav");
    assert_eq!(req.file_content_type(), Some("audio/wav"));
    assert_eq!(req.file_wav_duration_seconds(), Some(0.25));
    assert_eq!((req.temperature(), req.stream()), (None, false));
    let names: Vec<&str> = req.multipart().parts().iter().map(|p| p.name()).collect();
    assert_eq!(names, ["model", "response_format", "language", "file"]);
    let language = req.multipart().part("language").unwrap();
    assert_eq!(req.multipart().data(language), "en");
    assert_eq!(language.filename(), None);

    let defaults = transcription(
        &content_type(),
        &upload(&[("model", "gpt-4o-transcribe"), ("temperature", "0.2"), ("stream", "true")], b"ID3"),
    )
    .unwrap();
    assert_eq!(defaults.response_format(), TranscriptionFormat::Json);
    assert_eq!((defaults.temperature(), defaults.stream()), (Some(0.2), true));
    assert_eq!(defaults.file_wav_duration_seconds(), None, "only WAV is measured");
}

#[test]
fn transcription_upstream_body_replaces_only_the_model_value() {
    let audio = b"\x00\x01binary\r\n--not-the-boundary\xff";
    let body = upload(&[("prompt", "model: whisper-1"), ("model", "whisper-1"), ("response_format", "srt")], audio);
    let req = transcription(&content_type(), &body).unwrap();
    let same = req.upstream_body(Some("whisper-1"));
    assert_eq!(same.as_ptr(), req.body().as_ptr(), "nothing to change: the same buffer");
    let mapped = req.upstream_body(Some("whisper-large-v3"));
    let expected =
        upload(&[("prompt", "model: whisper-1"), ("model", "whisper-large-v3"), ("response_format", "srt")], audio);
    assert_eq!(&mapped[..], &expected[..]);
    // The mapped body reads back the same, with the new model.
    let again = transcription(&content_type(), &mapped).unwrap();
    assert_eq!((again.model(), again.file()), ("whisper-large-v3", Bytes::copy_from_slice(audio)));
}

#[test]
fn boundary_parameter_forms() {
    let body = |boundary: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\r\nMP3\r\n--{boundary}--"
        )
    };
    let cases = [
        ("multipart/form-data; boundary=abc", "abc"),
        ("Multipart/Form-Data;BOUNDARY=abc", "abc"),
        ("multipart/form-data; charset=utf-8; boundary=\"a:b c'()+_,-./=?\"", "a:b c'()+_,-./=?"),
        ("multipart/form-data; boundary=\"semi;colon\"; charset=utf-8", "semi;colon"),
        ("multipart/form-data; boundary=\"esc\\\"aped\"", "esc\"aped"),
        ("multipart/form-data; flag; boundary = spaced ", "spaced"),
    ];
    for (content_type, boundary) in cases {
        let req = transcription(content_type, body(boundary).as_bytes());
        assert_eq!(req.map(|r| r.file()).ok(), Some(Bytes::from_static(b"MP3")), "{content_type}");
    }
    let errors = [
        ("application/json", "unsupported_content_type"),
        ("multipart/mixed; boundary=abc", "unsupported_content_type"),
        ("", "unsupported_content_type"),
        ("multipart/form-data", "missing_boundary"),
        ("multipart/form-data; charset=utf-8", "missing_boundary"),
        ("multipart/form-data; boundary=", "invalid_boundary"),
        ("multipart/form-data; boundary=\"\"", "invalid_boundary"),
        ("multipart/form-data; boundary=\"unterminated", "invalid_boundary"),
        ("multipart/form-data; boundary=\"a\" junk", "invalid_boundary"),
        ("multipart/form-data; boundary=tab\there", "invalid_boundary"),
        ("multipart/form-data; boundary=naïve", "invalid_boundary"),
    ];
    for (content_type, code) in errors {
        let err = transcription(content_type, body("abc").as_bytes()).unwrap_err();
        assert_eq!((err.code(), err.param()), (code, None), "{content_type:?}");
    }
    let long = format!("multipart/form-data; boundary={}", "b".repeat(71));
    assert_eq!(transcription(&long, body(&"b".repeat(71)).as_bytes()).unwrap_err().code(), "invalid_boundary");
    let longest = format!("multipart/form-data; boundary={}", "b".repeat(70));
    assert!(transcription(&longest, body(&"b".repeat(70)).as_bytes()).is_ok());
}

#[test]
fn crlf_edge_cases() {
    let ct = "multipart/form-data; boundary=XyZ";
    let part = "Content-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n";
    // A preamble, transport padding after delimiters, an epilogue: accepted (RFC 2046).
    let body = format!("preamble line\r\n--XyZ  \t\r\n{part}DATA\r\n--XyZ-- trailing\r\nepilogue");
    assert_eq!(transcription(ct, body.as_bytes()).unwrap().file(), "DATA");
    // No line break after the closing delimiter.
    let body = format!("--XyZ\r\n{part}DATA\r\n--XyZ--");
    assert_eq!(transcription(ct, body.as_bytes()).unwrap().file(), "DATA");
    // A file ending in CR, or in CRLF, keeps those bytes.
    for data in ["DATA\r", "DATA\r\n", "\r\n", "\n"] {
        let body = format!("--XyZ\r\n{part}{data}\r\n--XyZ--\r\n");
        assert_eq!(transcription(ct, body.as_bytes()).unwrap().file(), data.as_bytes(), "{data:?}");
    }
    // Bare LF line endings are refused.
    let lf = "--XyZ\nContent-Disposition: form-data; name=\"model\"\n\nwhisper-1\n--XyZ--\n";
    assert_eq!(transcription(ct, lf.as_bytes()).unwrap_err().code(), "invalid_multipart");
    let mixed = "--XyZ\r\nContent-Disposition: form-data; name=\"model\"\nX-A: b\r\n\r\nwhisper-1\r\n--XyZ--\r\n";
    let err = transcription(ct, mixed.as_bytes()).unwrap_err();
    assert_eq!(err, TranscriptionError::Malformed("a part's header lines must end in CRLF"));
    let folded = "--XyZ\r\nContent-Disposition: form-data;\r\n name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ--\r\n";
    assert_eq!(transcription(ct, folded.as_bytes()).unwrap_err().code(), "invalid_multipart");
    // Something other than padding and CRLF after a delimiter at the body's start: not a
    // delimiter, and no other is found.
    let glued = format!("--XyZ{part}DATA");
    assert_eq!(transcription(ct, glued.as_bytes()).unwrap_err().code(), "truncated_multipart");
}

#[test]
fn a_file_holding_boundary_like_text_is_data() {
    let tricky: &[u8] = b"--XyZ at a line start without CRLF before it\r\n--XyZX glued text\r\n--XyZ-not\r\n--Xy\r\n--XyZ\t junk\r\n--xyz\r\nend";
    // `\r\n--XyZ-not` is followed by `-n`, not `--`: data. So is a tab followed by text.
    let body = [
        &b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"[..],
        tricky,
        b"\r\n--XyZ--\r\n",
    ]
    .concat();
    let req = transcription("multipart/form-data; boundary=XyZ", &body).unwrap();
    assert_eq!(req.file(), tricky);
    assert_eq!(req.file_content_type(), Some("application/octet-stream"));
}

#[test]
fn truncated_and_unnamed_parts_are_refused() {
    let ct = content_type();
    let full = upload(&[("model", "whisper-1")], b"RIFF....WAVE");
    let errors: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "truncated_multipart"),
        (full[..10].to_vec(), "truncated_multipart"),
        (full[..full.len() - 4].to_vec(), "truncated_multipart"),
        (b"no boundary anywhere".to_vec(), "invalid_multipart"),
        (format!("--{BOUNDARY}\r\n\r\nvalue\r\n--{BOUNDARY}--").into_bytes(), "invalid_multipart"),
        (format!("--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nv\r\n--{BOUNDARY}--").into_bytes(), "invalid_multipart"),
        (format!("--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nv\r\n--{BOUNDARY}--").into_bytes(), "invalid_multipart"),
        (format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"\"\r\n\r\nv\r\n--{BOUNDARY}--").into_bytes(), "invalid_multipart"),
        (format!("--{BOUNDARY}\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nv\r\n--{BOUNDARY}--").into_bytes(), "invalid_multipart"),
        (format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"a\"; name=\"b\"\r\n\r\nv\r\n--{BOUNDARY}--").into_bytes(), "invalid_multipart"),
        (format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"a\r\n\r\nv\r\n--{BOUNDARY}--").into_bytes(), "invalid_multipart"),
        (format!("--{BOUNDARY}\r\nContent-Disposition form-data\r\n\r\nv\r\n--{BOUNDARY}--").into_bytes(), "invalid_multipart"),
        (format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nv\r\n--{BOUNDARY}--").into_bytes(), "invalid_multipart"),
        ([format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"").as_bytes(), b"\xff\"\r\n\r\nv\r\n--", BOUNDARY.as_bytes(), b"--"].concat(), "invalid_multipart"),
    ];
    for (body, code) in errors {
        let err = transcription(&ct, &body).unwrap_err();
        assert_eq!((err.code(), err.param()), (code, None), "{:?}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn multipart_limits() {
    let mut many = String::new();
    for i in 0..=MAX_PARTS {
        many.push_str(&format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nv\r\n"));
    }
    many.push_str(&format!("--{BOUNDARY}--\r\n"));
    let err = transcription(&content_type(), many.as_bytes()).unwrap_err();
    assert_eq!(err.code(), "multipart_too_large");

    let big_header = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\nX-Pad: {}\r\n\r\nwhisper-1\r\n--{BOUNDARY}--\r\n",
        "p".repeat(MAX_PART_HEADER_BYTES)
    );
    let err = transcription(&content_type(), big_header.as_bytes()).unwrap_err();
    assert_eq!(err, TranscriptionError::TooLarge("a part's headers may have at most 8192 bytes"));
    assert_eq!(err.to_string(), "Multipart body too large: a part's headers may have at most 8192 bytes.");
}

#[test]
fn transcription_field_errors_name_the_field() {
    let ct = content_type();
    let no_file = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--{BOUNDARY}--\r\n"
    );
    let text_file = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--{BOUNDARY}--\r\n");
    let mut bad_utf8 = upload(&[("model", "whisper-1"), ("response_format", "json")], b"x");
    let at = bad_utf8.windows(4).position(|w| w == b"json").unwrap();
    bad_utf8[at] = 0xc3;
    let mut invalid_model = upload(&[("model", "whisper-1")], b"x");
    let at = invalid_model.windows(9).position(|w| w == b"whisper-1").unwrap();
    invalid_model[at] = 0xff;
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (upload(&[], b"x"), "missing_required_parameter", "model"),
        (upload(&[("model", "")], b"x"), "invalid_value", "model"),
        (invalid_model, "invalid_value", "model"),
        (upload(&[("model", "a"), ("model", "b")], b"x"), "duplicate_parameter", "model"),
        (no_file.into_bytes(), "missing_required_parameter", "file"),
        (text_file.into_bytes(), "invalid_value", "file"),
        (upload(&[("model", "whisper-1")], b""), "invalid_value", "file"),
        (upload(&[("model", "whisper-1"), ("response_format", "xml")], b"x"), "invalid_value", "response_format"),
        (bad_utf8, "invalid_value", "response_format"),
        (upload(&[("model", "whisper-1"), ("temperature", "1.5")], b"x"), "invalid_value", "temperature"),
        (upload(&[("model", "whisper-1"), ("temperature", "warm")], b"x"), "invalid_value", "temperature"),
        (upload(&[("model", "whisper-1"), ("stream", "yes")], b"x"), "invalid_value", "stream"),
        (
            upload(&[("model", "whisper-1"), ("stream", "true"), ("stream", "false")], b"x"),
            "duplicate_parameter",
            "stream",
        ),
    ];
    for (body, code, param) in cases {
        let err = transcription(&ct, &body).unwrap_err();
        assert_eq!((err.code(), err.param()), (code, Some(param)), "{:?}", String::from_utf8_lossy(&body));
    }
    let formats = ["json", "text", "srt", "verbose_json", "vtt", "diarized_json"];
    for format in formats {
        let req = transcription(&ct, &upload(&[("model", "m"), ("response_format", format)], b"x")).unwrap();
        assert_eq!(req.response_format().as_str(), format);
        assert_eq!(req.response_format().is_json(), format.ends_with("json"));
    }
}

/// Property: no prefix and no single-byte mutation of a valid body makes the reader panic,
/// and every prefix that ends before the closing delimiter is refused.
#[test]
fn truncations_and_mutations_never_panic() {
    let body = upload(&[("model", "whisper-1"), ("prompt", "--x \"q\" ;")], &wav(8_000, 64));
    let close = body.len() - b"--\r\n".len();
    let ct = content_type();
    for cut in 0..=body.len() {
        let result = transcription(&ct, &body[..cut]);
        if cut < close {
            assert!(result.is_err(), "a prefix of {cut} bytes was accepted");
        }
    }
    assert!(transcription(&ct, &body[..close + 2]).is_ok());
    let specials = [b'\r', b'\n', b'-', b'"', b';', b':', b'\\', 0xff, 0];
    let mut accepted = 0;
    for at in 0..body.len() {
        for &byte in &specials {
            let mut mutated = body.clone();
            mutated[at] = byte;
            accepted += usize::from(transcription(&ct, &mutated).is_ok());
            let _ = Multipart::parse(&ct, Bytes::from(mutated));
        }
    }
    assert!(accepted > 0, "mutations inside the file's bytes stay valid");
}

// ---------------------------------------------------------------- durations

#[test]
fn duration_from_the_answer() {
    let json = br#"{"text":"Hello.","usage":{"type":"duration","seconds":3}}"#;
    assert_eq!(duration_seconds(json, "application/json"), Some(3.0));
    let verbose =
        br#"{"task":"transcribe","language":"english","duration":8.470000267028809,"text":"Hi","segments":[]}"#;
    assert_eq!(duration_seconds(verbose, "application/json; charset=utf-8"), Some(8.470000267028809));
    let both = br#"{"duration":8.5,"usage":{"type":"duration","seconds":9}}"#;
    assert_eq!(duration_seconds(both, ""), Some(9.0), "usage first; JSON found by its first byte");
    let tokens = br#"{"text":"Hi","usage":{"type":"tokens","input_tokens":14,"output_tokens":45,"total_tokens":59}}"#;
    assert_eq!(duration_seconds(tokens, "application/json"), None);
    let negative = br#"{"usage":{"type":"duration","seconds":-1},"duration":2}"#;
    assert_eq!(duration_seconds(negative, "application/json"), Some(2.0));
    assert_eq!(duration_seconds(b"Hello there.", "text/plain; charset=utf-8"), None);
    assert_eq!(duration_seconds(b"1\n00:00:00,000 --> 00:00:01,000\nHi\n", "text/plain"), None);
    assert_eq!(duration_seconds(b"{broken", "application/json"), None);
    assert_eq!(duration_seconds(br#"{"duration":"8.4"}"#, "application/json"), None);
}

#[test]
fn wav_duration_from_the_header() {
    assert_eq!(wav_duration_seconds(&wav(16_000, 32_000)), Some(1.0));
    assert_eq!(wav_duration_seconds(&wav(24_000, 12_000)), Some(0.25));
    // Streamed WAVs leave the data size unknown: up to the end.
    let mut streamed = wav(8_000, 4_000);
    streamed[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(wav_duration_seconds(&streamed), Some(0.25));
    streamed[40..44].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(wav_duration_seconds(&streamed), Some(0.25));
    // A truncated upload is measured as what it holds.
    let full = wav(8_000, 16_000);
    assert_eq!(wav_duration_seconds(&full[..44 + 8_000]), Some(0.5));
    // Other chunks (odd-sized, padded) before `fmt ` and `data`; byte rate from block align.
    let mut chunked = Vec::new();
    chunked.extend_from_slice(&full[..12]);
    chunked.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00");
    chunked.extend_from_slice(&full[12..]);
    chunked[12 + 12 + 16..12 + 12 + 20].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(wav_duration_seconds(&chunked), Some(1.0));
    // Not measurable.
    assert_eq!(wav_duration_seconds(b"ID3\x04\x00\x00\x00\x00\x00\x00"), None);
    assert_eq!(wav_duration_seconds(b"RIFF\x00\x00\x00\x00WAVE"), None);
    assert_eq!(wav_duration_seconds(&full[..30]), None, "fmt chunk cut");
    let mut no_rate = wav(8_000, 100);
    no_rate[28..36].copy_from_slice(&[0; 8]);
    assert_eq!(wav_duration_seconds(&no_rate), None);
    let mut short_fmt = wav(8_000, 100);
    short_fmt[16..20].copy_from_slice(&8u32.to_le_bytes());
    assert_eq!(wav_duration_seconds(&short_fmt), None);
    let mut huge_chunk = wav(8_000, 100);
    huge_chunk[12..16].copy_from_slice(b"junk");
    huge_chunk[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(wav_duration_seconds(&huge_chunk), None);
    for cut in 0..60 {
        let _ = wav_duration_seconds(&full[..cut]);
    }
}
