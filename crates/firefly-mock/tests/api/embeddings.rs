use base64::Engine;
use firefly_mock::embedding_vector;
use serde_json::{json, Value};

use crate::{openai_error, Harness, KEY};

async fn embed(h: &Harness, body: Value) -> Value {
    let response = h.client.post(h.url("/embeddings")).bearer_auth(KEY).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

#[tokio::test]
async fn string_input_gets_one_fixed_vector() {
    let h = Harness::start().await;
    let response = embed(&h, json!({"model": "text-embedding-3-small", "input": "The food was delicious."})).await;
    assert_eq!(response["object"], "list");
    assert_eq!(response["model"], "text-embedding-3-small");
    let data = response["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["object"], "embedding");
    assert_eq!(data[0]["index"], 0);
    let vector: Vec<f32> = serde_json::from_value(data[0]["embedding"].clone()).unwrap();
    assert_eq!(vector, embedding_vector(0, 8));
    // 23 characters → 5 tokens.
    assert_eq!(response["usage"], json!({"prompt_tokens": 5, "total_tokens": 5}));
    in_snapshots!(insta::assert_json_snapshot!("embeddings", response));
}

#[tokio::test]
async fn array_inputs_get_one_vector_each() {
    let h = Harness::start().await;
    let response = embed(&h, json!({"model": "e", "input": ["first input", "second", [1, 2, 3, 4]]})).await;
    let data = response["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        let vector: Vec<f32> = serde_json::from_value(item["embedding"].clone()).unwrap();
        assert_eq!(vector, embedding_vector(i as u64, 8));
    }
    // (11 + 6) / 4 = 4 from text, plus 4 token ids.
    assert_eq!(response["usage"]["prompt_tokens"], 8);

    // A flat token array is a single input.
    let response = embed(&h, json!({"model": "e", "input": [5, 6, 7]})).await;
    assert_eq!(response["data"].as_array().unwrap().len(), 1);
    assert_eq!(response["usage"]["total_tokens"], 3);
}

#[tokio::test]
async fn dimensions_and_base64_encoding() {
    let h = Harness::start().await;
    let response = embed(&h, json!({"model": "e", "input": "x", "dimensions": 3})).await;
    assert_eq!(response["data"][0]["embedding"].as_array().unwrap().len(), 3);

    let response = embed(&h, json!({"model": "e", "input": "x", "encoding_format": "base64"})).await;
    let encoded = response["data"][0]["embedding"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
    let floats: Vec<f32> = bytes.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(floats, embedding_vector(0, 8));
}

#[tokio::test]
async fn embedding_errors() {
    let h = Harness::start().await;
    let url = h.url("/embeddings");
    let error =
        openai_error(h.client.post(&url).json(&json!({"model": "e", "input": "x"})).send().await.unwrap(), 401).await;
    assert_eq!(error["type"], "invalid_request_error");
    let error =
        openai_error(h.client.post(&url).bearer_auth(KEY).json(&json!({"model": "e"})).send().await.unwrap(), 400)
            .await;
    assert_eq!(error["param"], "input");
    let response =
        h.client.post(&url).bearer_auth(KEY).header("x-mock-status", "429").json(&json!({"model": "e", "input": "x"}));
    openai_error(response.send().await.unwrap(), 429).await;
    assert_eq!(h.mock.embeddings_requests(), 3);
    assert_eq!(h.mock.error_responses(), 3);
}
