use firefly_mock::MockConfig;
use serde_json::{json, Value};

use crate::{openai_error, Harness, KEY};

#[tokio::test]
async fn models_lists_the_configured_models() {
    let h = Harness::with(MockConfig { models: vec!["gpt-4o".into(), "my-finetune".into()], ..MockConfig::default() })
        .await;
    let response = h.client.get(h.url("/models")).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.unwrap();
    assert_eq!(
        list,
        json!({
            "object": "list",
            "data": [
                {"id": "gpt-4o", "object": "model", "created": 1686935002, "owned_by": "openai"},
                {"id": "my-finetune", "object": "model", "created": 1686935002, "owned_by": "openai"}
            ]
        })
    );

    let model: Value =
        h.client.get(h.url("/models/my-finetune")).bearer_auth(KEY).send().await.unwrap().json().await.unwrap();
    assert_eq!(model["id"], "my-finetune");
    assert_eq!(model["object"], "model");

    let error = openai_error(h.client.get(h.url("/models/nope")).bearer_auth(KEY).send().await.unwrap(), 404).await;
    assert_eq!(error["code"], "model_not_found");
    openai_error(h.client.get(h.url("/models")).send().await.unwrap(), 401).await;
    assert_eq!(h.mock.models_requests(), 4);
}
