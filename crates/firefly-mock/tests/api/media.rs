//! OpenAI images and audio, their Azure routes, and the generated files.

use base64::Engine;
use serde_json::{json, Value};

use crate::{openai_error, Harness, KEY};

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The duration a WAV header announces (data bytes / byte rate), checked independently of
/// the mock's own parser.
fn wav_seconds(bytes: &[u8]) -> f64 {
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[8..16], b"WAVEfmt ");
    assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize, bytes.len() - 8);
    let byte_rate = u32::from_le_bytes(bytes[28..32].try_into().unwrap());
    assert_eq!(&bytes[36..40], b"data");
    let data = u32::from_le_bytes(bytes[40..44].try_into().unwrap());
    assert_eq!(data as usize, bytes.len() - 44);
    f64::from(data) / f64::from(byte_rate)
}

fn check_png(bytes: &[u8]) {
    assert!(bytes.starts_with(PNG_SIGNATURE));
    assert_eq!(&bytes[12..16], b"IHDR");
    assert!(bytes.ends_with(b"IEND\xAE\x42\x60\x82"), "IEND with its well-known CRC");
}

#[tokio::test]
async fn dall_e_answers_with_urls_that_serve_pngs() {
    let h = Harness::start().await;
    let response = h
        .client
        .post(h.url("/images/generations"))
        .bearer_auth(KEY)
        .json(&json!({"model": "dall-e-2", "prompt": "a firefly", "n": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert!(answer["created"].as_u64().is_some());
    assert!(answer.get("usage").is_none(), "DALL·E reports no usage");
    let data = answer["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let prefix = format!("{}/_mock/files/img-", h.mock.origin());
    for image in data {
        let url = image["url"].as_str().unwrap();
        assert!(url.starts_with(&prefix) && url.ends_with(".png"), "{url}");
        // Files need no key.
        let file = h.client.get(url).send().await.unwrap();
        assert_eq!(file.status(), 200);
        assert_eq!(file.headers()["content-type"], "image/png");
        check_png(&file.bytes().await.unwrap());
    }
    assert_ne!(data[0]["url"], data[1]["url"]);
    let stats = h.mock.stats();
    assert_eq!((stats.images, stats.files, stats.requests, stats.chat_completions), (1, 2, 1, 0));
}

#[tokio::test]
async fn b64_json_and_gpt_image_usage() {
    let h = Harness::start().await;
    let request = json!({"model": "dall-e-3", "prompt": "a firefly", "response_format": "b64_json"});
    let answer: Value = h
        .client
        .post(h.url("/images/generations"))
        .bearer_auth(KEY)
        .json(&request)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b64 = answer["data"][0]["b64_json"].as_str().unwrap();
    check_png(&base64::engine::general_purpose::STANDARD.decode(b64).unwrap());
    assert_eq!(answer["data"][0]["revised_prompt"], "a firefly");

    // "a firefly at dusk" is 17 characters → 4 input tokens; 272 output tokens per image.
    let request = json!({"model": "gpt-image-1", "prompt": "a firefly at dusk", "n": 3});
    let answer: Value = h
        .client
        .post(h.url("/images/generations"))
        .bearer_auth(KEY)
        .json(&request)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["data"].as_array().unwrap().len(), 3);
    assert!(answer["data"][0]["b64_json"].is_string());
    assert!(answer["data"][0].get("url").is_none());
    assert_eq!(
        answer["usage"],
        json!({"input_tokens": 4, "input_tokens_details": {"image_tokens": 0, "text_tokens": 4}, "output_tokens": 816, "total_tokens": 820})
    );
    assert_eq!(answer["output_format"], "png");
}

#[tokio::test]
async fn image_errors_are_openai_errors() {
    let h = Harness::start().await;
    let url = h.url("/images/generations");
    let error = openai_error(h.client.post(&url).json(&json!({"prompt": "x"})).send().await.unwrap(), 401).await;
    assert_eq!(error["type"], "invalid_request_error");
    let error =
        openai_error(h.client.post(&url).bearer_auth(KEY).json(&json!({"n": 1})).send().await.unwrap(), 400).await;
    assert_eq!(error["param"], "prompt");
    let request = h.client.post(&url).bearer_auth(KEY).json(&json!({"prompt": "x", "n": 11}));
    assert_eq!(openai_error(request.send().await.unwrap(), 400).await["param"], "n");
    let request = h.client.post(&url).bearer_auth(KEY).json(&json!({"prompt": 5}));
    openai_error(request.send().await.unwrap(), 400).await;
    let request = h.client.post(&url).bearer_auth(KEY).header("x-mock-status", "429").json(&json!({"prompt": "x"}));
    assert_eq!(openai_error(request.send().await.unwrap(), 429).await["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn speech_length_follows_the_input() {
    let h = Harness::start().await;
    let speak = |format: &str, input: &str| {
        h.client
            .post(h.url("/audio/speech"))
            .bearer_auth(KEY)
            .json(&json!({"model": "tts-1", "voice": "alloy", "input": input, "response_format": format}))
    };
    // 25 characters → 1 second of 24 kHz 16-bit mono: 48 000 bytes of PCM.
    let input = "Twenty-five characters!!";
    let input = format!("{input}.");
    assert_eq!(input.chars().count(), 25);
    let response = speak("wav", &input).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "audio/wav");
    let wav = response.bytes().await.unwrap();
    assert_eq!(wav.len(), 44 + 48_000);
    assert_eq!(wav_seconds(&wav), 1.0);

    let pcm = speak("pcm", &input).send().await.unwrap();
    assert_eq!(pcm.headers()["content-type"], "audio/pcm");
    assert_eq!(pcm.bytes().await.unwrap()[..], wav[44..]);

    for (format, content_type, magic) in [
        ("mp3", "audio/mpeg", &b"ID3"[..]),
        ("opus", "audio/opus", b"OggS"),
        ("aac", "audio/aac", b"\xFF\xF1"),
        ("flac", "audio/flac", b"fLaC"),
    ] {
        let response = speak(format, &input).send().await.unwrap();
        assert_eq!(response.headers()["content-type"], content_type);
        let bytes = response.bytes().await.unwrap();
        assert_eq!(bytes.len(), 25 * 240, "{format}");
        assert!(bytes.starts_with(magic));
        assert_eq!(speak(format, &input).send().await.unwrap().bytes().await.unwrap(), bytes, "deterministic");
    }
    // mp3 is the default.
    let response = h.client.post(h.url("/audio/speech")).bearer_auth(KEY);
    let response = response.json(&json!({"model": "tts-1", "voice": "alloy", "input": "abcd"})).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    assert_eq!(response.bytes().await.unwrap().len(), 4 * 240);
    assert_eq!(h.mock.stats().speech, 11);
}

#[tokio::test]
async fn speech_errors() {
    let h = Harness::start().await;
    let url = h.url("/audio/speech");
    for (body, param) in [
        (json!({"model": "tts-1", "voice": "alloy"}), "input"),
        (json!({"model": "tts-1", "input": "x"}), "voice"),
        (json!({"model": "tts-1", "voice": "alloy", "input": ""}), "input"),
        (json!({"model": "tts-1", "voice": "alloy", "input": "x".repeat(4097)}), "input"),
        (json!({"model": "tts-1", "voice": "alloy", "input": "x", "response_format": "ogg"}), "response_format"),
    ] {
        let error = openai_error(h.client.post(&url).bearer_auth(KEY).json(&body).send().await.unwrap(), 400).await;
        assert_eq!(error["param"], param, "{body}");
    }
}

/// A multipart body with a WAV `file`, a `model` and a `response_format`.
fn multipart(file: &[u8], filename: &str, format: Option<&str>) -> (String, Vec<u8>) {
    let boundary = "----firefly-boundary-1234";
    let mut body = Vec::new();
    let mut field = |name: &str, value: &[u8], filename: Option<&str>| {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    };
    field("model", b"whisper-1", None);
    field("file", file, Some(filename));
    if let Some(format) = format {
        field("response_format", format.as_bytes(), None);
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn wav_of(h: &Harness, chars: usize) -> Vec<u8> {
    let input = "x".repeat(chars);
    let response = h.client.post(h.url("/audio/speech")).bearer_auth(KEY);
    let response =
        response.json(&json!({"model": "tts-1", "voice": "alloy", "input": input, "response_format": "wav"}));
    response.send().await.unwrap().bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn transcription_reports_the_wav_duration() {
    let h = Harness::start().await;
    // 50 characters → 2 seconds of speech, whose bytes contain CRLFs and dashes.
    let wav = wav_of(&h, 50).await;
    let transcribe = |format: Option<&str>, file: &[u8], name: &str| {
        let (content_type, body) = multipart(file, name, format);
        h.client.post(h.url("/audio/transcriptions")).bearer_auth(KEY).header("content-type", content_type).body(body)
    };
    let answer: Value = transcribe(None, &wav, "a.wav").send().await.unwrap().json().await.unwrap();
    assert_eq!(
        answer,
        json!({"text": "Firefly mock says hello from the local upstream.", "usage": {"type": "duration", "seconds": 2.0}})
    );

    let verbose: Value = transcribe(Some("verbose_json"), &wav, "a.wav")
        .header("x-mock-chunks", "2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verbose["duration"], 2.0);
    assert_eq!(verbose["text"], "Firefly mock");
    assert_eq!(verbose["task"], "transcribe");
    assert_eq!(verbose["segments"][0]["end"], 2.0);
    assert_eq!(verbose["usage"]["seconds"], 2.0);

    let text = transcribe(Some("text"), &wav, "a.wav").send().await.unwrap();
    assert_eq!(text.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(text.text().await.unwrap(), "Firefly mock says hello from the local upstream.\n");

    let srt = transcribe(Some("srt"), &wav, "a.wav").send().await.unwrap().text().await.unwrap();
    assert!(srt.starts_with("1\n00:00:00,000 --> 00:00:02,000\n"), "{srt}");

    // Not a WAV: one second.
    let answer: Value = transcribe(None, b"ID3 not really mp3", "a.mp3").send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["usage"]["seconds"], 1.0);
    assert_eq!(h.mock.stats().transcriptions, 5);
}

#[tokio::test]
async fn transcription_errors() {
    let h = Harness::start().await;
    let url = h.url("/audio/transcriptions");
    let error =
        openai_error(h.client.post(&url).bearer_auth(KEY).json(&json!({"file": "x"})).send().await.unwrap(), 400).await;
    assert_eq!(error["type"], "invalid_request_error");

    let boundary = "b0undary";
    let only_model = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--{boundary}--\r\n"
    );
    let request = h
        .client
        .post(&url)
        .bearer_auth(KEY)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"));
    assert_eq!(openai_error(request.body(only_model).send().await.unwrap(), 400).await["param"], "file");

    let (content_type, body) = multipart(b"RIFF", "a.wav", Some("yaml"));
    let request = h.client.post(&url).bearer_auth(KEY).header("content-type", content_type).body(body);
    assert_eq!(openai_error(request.send().await.unwrap(), 400).await["param"], "response_format");

    // Truncated multipart: no panic, a 400.
    let request = h.client.post(&url).bearer_auth(KEY).header("content-type", "multipart/form-data; boundary=zz");
    openai_error(request.body("--zz\r\nContent-Disposition: form-data; name=\"file\"").send().await.unwrap(), 400)
        .await;
}

#[tokio::test]
async fn azure_routes_for_images_and_audio() {
    let h = Harness::start().await;
    let base = format!("{}/openai/deployments/my-dalle", h.mock.origin());
    let response = h
        .client
        .post(format!("{base}/images/generations?api-version=2024-10-21"))
        .header("api-key", KEY)
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let no_version = h.client.post(format!("{base}/audio/speech")).header("api-key", KEY);
    let no_version = no_version.json(&json!({"voice": "alloy", "input": "x"})).send().await.unwrap();
    openai_error(no_version, 404).await;
    let speech = h.client.post(format!("{base}/audio/speech?api-version=2024-10-21")).header("api-key", KEY);
    let speech =
        speech.json(&json!({"voice": "alloy", "input": "abcd", "response_format": "wav"})).send().await.unwrap();
    assert_eq!(speech.bytes().await.unwrap().len(), 44 + 4 * 1920);
    let (content_type, body) = multipart(b"x", "a.bin", None);
    let transcription = h
        .client
        .post(format!("{base}/audio/transcriptions?api-version=2024-10-21"))
        .header("api-key", KEY)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(transcription.status(), 200);
}

#[tokio::test]
async fn unknown_files_are_404() {
    let h = Harness::start().await;
    for name in ["img-x.png", "nothing", "speech-99999999-1.wav", "speech-3.wav"] {
        let response = h.client.get(format!("{}/_mock/files/{name}", h.mock.origin())).send().await.unwrap();
        assert_eq!(response.status(), 404, "{name}");
    }
    let speech = h.client.get(format!("{}/_mock/files/speech-25-7.wav", h.mock.origin())).send().await.unwrap();
    assert_eq!(speech.headers()["content-type"], "audio/wav");
    assert_eq!(wav_seconds(&speech.bytes().await.unwrap()), 1.0);
}
